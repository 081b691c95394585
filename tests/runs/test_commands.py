"""The operator commands: each prints what the next step needs as its last line."""

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from gateways.models import ApiKey, Gateway, GatewayToken
from pipelines.models import Pipeline
from runs.models import LogLine, Run, RunStatus, TelemetrySample
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def last_line(*args, **kwargs) -> str:
    out = StringIO()
    call_command(*args, stdout=out, **kwargs)
    return out.getvalue().strip().splitlines()[-1]


def test_create_gateway_issues_a_working_token_each_time():
    first = last_line("create_gateway", "edge-1")
    second = last_line("create_gateway", "edge-1")
    assert first.startswith("gwt_") and second.startswith("gwt_") and first != second
    assert Gateway.objects.count() == 1
    assert GatewayToken.objects.count() == 2
    assert not GatewayToken.objects.filter(secret_hash__contains=first[4:]).exists()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {first}")
    assert client.get("/api/agent/runs").status_code == 200


def test_create_api_key_prints_a_working_key():
    UserFactory(username="ana")
    key = last_line("create_api_key", "ana", "--role", "runner")
    assert key.startswith("eltk_") and len(key) >= 5 + 43
    assert ApiKey.objects.get().prefix == key[:12]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert client.get("/api/elt/runs/run_missing").status_code == 404


@pytest.mark.parametrize(
    ("args", "groups"),
    [
        (["--create-user"], ["viewer"]),
        (["--create-user", "--role", "operator"], ["operator"]),
        (["--create-user", "--role", "runner"], ["runner"]),
    ],
)
def test_create_api_key_gives_a_new_user_a_role(args, groups):
    last_line("create_api_key", "newcomer", *args)
    user = get_user_model().objects.get(username="newcomer")
    assert list(user.groups.values_list("name", flat=True)) == groups


def test_an_existing_user_keeps_their_roles_unless_a_role_is_given():
    user = UserFactory(username="ana")
    user.groups.add(Group.objects.get(name="operator"))
    last_line("create_api_key", "ana")
    assert list(user.groups.values_list("name", flat=True)) == ["operator"]
    last_line("create_api_key", "ana", "--role", "viewer")
    assert list(user.groups.values_list("name", flat=True)) == ["viewer"]


def test_create_api_key_refuses_unknown_user_unless_asked_to_create():
    with pytest.raises(CommandError):
        call_command("create_api_key", "nobody", stdout=StringIO())
    assert last_line("create_api_key", "nobody", "--create-user").startswith("eltk_")


def test_create_pipeline_prints_its_id_and_is_idempotent():
    call_command("create_gateway", "edge-1", stdout=StringIO())
    pipeline_id = last_line("create_pipeline", "crm", "--gateway", "edge-1")
    assert pipeline_id == last_line("create_pipeline", "crm")
    pipeline = Pipeline.objects.get(public_id=pipeline_id)
    assert pipeline.default_gateway.name == "edge-1"
    with pytest.raises(CommandError):
        call_command("create_pipeline", "other", "--gateway", "missing", stdout=StringIO())


def test_seed_demo_makes_runs_in_every_status_with_logs_and_telemetry():
    out = StringIO()
    call_command(
        "seed_demo", "--runs", "300", "--admin-password", "pw-123456", "--seed", "1", stdout=out
    )
    assert "admin / pw-123456" in out.getvalue()
    assert Run.objects.count() == 360
    statuses = set(Run.objects.values_list("status", flat=True))
    assert {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.RUNNING, RunStatus.QUEUED} <= statuses
    assert LogLine.objects.exists() and TelemetrySample.objects.exists()
    assert Run.objects.filter(status=RunStatus.RUNNING, sample_seq__gt=0).exists()
    # A second call adds history but no second set of users or gateways.
    call_command("seed_demo", "--runs", "10", "--no-live", stdout=StringIO())
    assert Run.objects.count() == 370
