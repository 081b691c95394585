"""A person's permissions, own and through their groups, in one query per request."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Group, Permission
from django.db import connection

from common.actors import Actor
from common.roles import Perm, Role
from gateways.services import api_key_authenticate, api_key_issue


@pytest.mark.django_db
def test_own_and_group_permissions_are_one_query(analyst, django_assert_num_queries):
    analyst.user_permissions.add(Permission.objects.get(codename="cancel_run"))
    fresh = get_user_model().objects.get(pk=analyst.pk)
    with django_assert_num_queries(1):
        assert fresh.has_perm(Perm.VIEW_RUNS)  # through the viewer group
        assert fresh.has_perm(Perm.CANCEL_RUNS)  # given to the person
        assert not fresh.has_perm(Perm.REPORT_RUNS)
    assert fresh.get_all_permissions() >= {Perm.VIEW_RUNS, Perm.CANCEL_RUNS}


@pytest.mark.django_db
def test_a_change_of_role_applies_to_the_next_request(analyst, api_key_for):
    raw = api_key_for(analyst)
    assert not api_key_authenticate(raw=raw).user.has_perm(Perm.CANCEL_RUNS)
    analyst.groups.add(Group.objects.get(name=Role.OPERATOR))
    assert api_key_authenticate(raw=raw).user.has_perm(Perm.CANCEL_RUNS)
    analyst.groups.clear()
    assert not api_key_authenticate(raw=raw).user.has_perm(Perm.VIEW_RUNS)


@pytest.mark.django_db
def test_inactive_people_hold_nothing_and_superusers_everything(analyst):
    analyst.is_active = False
    analyst.save()
    assert not get_user_model().objects.get(pk=analyst.pk).has_perm(Perm.VIEW_RUNS)
    boss = get_user_model().objects.create_superuser("boss", "boss@example.com", None)
    assert Perm.CANCEL_RUNS in boss.get_all_permissions()
    assert boss.has_perm(Perm.CANCEL_RUNS)


@pytest.mark.django_db
def test_the_one_statement_reads_what_django_reads(analyst, operator):
    Group.objects.create(name="empty")  # a group holding nothing changes nothing
    analyst.groups.add(Group.objects.get(name="empty"))
    analyst.user_permissions.add(Permission.objects.get(codename="cancel_run"))
    operator.user_permissions.add(Permission.objects.get(codename="view_run"))  # also by group
    loner = get_user_model().objects.create_user("loner")
    boss = get_user_model().objects.create_superuser("boss", "boss@example.com", None)
    for person in (analyst, operator, loner, boss):
        fresh = get_user_model().objects.get(pk=person.pk)
        assert fresh.get_all_permissions() == ModelBackend().get_all_permissions(
            get_user_model().objects.get(pk=person.pk)
        ), person.username
    assert get_user_model().objects.get(pk=loner.pk).get_all_permissions() == set()
    assert len(get_user_model().objects.get(pk=boss.pk).get_all_permissions()) == (
        Permission.objects.count()
    )


@pytest.fixture
def api_key_for():
    def issue(user) -> str:
        return api_key_issue(actor=Actor.system(), user=user)[1]

    return issue


@pytest.mark.django_db
def test_an_api_key_brings_its_persons_permissions_in_its_own_statement(
    analyst, operator, api_key_for, django_assert_num_queries
):
    """On PostgreSQL the key's statement reads the permissions too; elsewhere they are read, in
    one statement, at the first check. Either way they are exactly what Django would read."""
    analyst.user_permissions.add(Permission.objects.get(codename="cancel_run"))
    loner = get_user_model().objects.create_user("loner")
    boss = get_user_model().objects.create_superuser("boss", "boss@example.com", None)
    checks = 0 if connection.vendor == "postgresql" else 1
    for person in (analyst, operator, loner, boss):
        raw = api_key_for(person)
        api_key_authenticate(raw=raw)  # the first use is written down; the next is not
        with django_assert_num_queries(1):
            key = api_key_authenticate(raw=raw)
        with django_assert_num_queries(checks):
            held = key.user.get_all_permissions()
            key.user.has_perm(Perm.CANCEL_RUNS)
        expected = ModelBackend().get_all_permissions(get_user_model().objects.get(pk=person.pk))
        assert held == expected, person.username
    assert held == {f"{p.content_type.app_label}.{p.codename}" for p in Permission.objects.all()}
    assert api_key_authenticate(raw="eltk_" + "x" * 40) is None
