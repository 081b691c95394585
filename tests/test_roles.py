"""Who may do what: every role against every write route and page action.

A refused call answers 403 with a JSON body (or the 403 page) naming the role it needs, and leaves
the database exactly as it was: runs, their log, samples and nodes, pipelines, endpoints and the
audit trail.
"""

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from rest_framework.test import APIClient

from common.actors import Actor
from common.models import AuditEvent
from common.roles import ROLE_PERMISSIONS, Role
from gateways.services import api_key_issue
from pipelines.models import Pipeline
from runs.models import LogLine, Run, RunNode, RunStatus, TelemetrySample
from tests.factories import RunFactory, UserFactory
from webhooks.models import WebhookEndpoint
from webhooks.services import webhook_endpoint_create

pytestmark = pytest.mark.django_db

ROLES = ["nobody", "viewer", "runner", "operator"]


def person(role: str):
    user = UserFactory(username=f"{role}-person")
    if role != "nobody":
        user.groups.add(Group.objects.get(name=role))
    return user


def key_client(user) -> APIClient:
    _, raw = api_key_issue(actor=Actor.system(), user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def database_state() -> dict:
    return {
        "runs": sorted(
            Run.objects.values_list(
                "public_id", "status", "error_summary", "log_seq", "sample_seq", "updated_at"
            )
        ),
        "logs": sorted(LogLine.objects.values_list("run_id", "seq", "message")),
        "samples": sorted(TelemetrySample.objects.values_list("run_id", "seq")),
        "nodes": sorted(RunNode.objects.values_list("run_id", "node_id", "status")),
        "pipelines": sorted(Pipeline.objects.values_list("public_id", "name", "description")),
        "endpoints": sorted(WebhookEndpoint.objects.values_list("public_id", "url", "enabled")),
        "audit": AuditEvent.objects.count(),
    }


@pytest.fixture
def world(pipeline, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_URLS = True
    endpoint, _ = webhook_endpoint_create(
        actor=Actor.system(), url="http://127.0.0.1:9/hook", events=["run.failed"]
    )
    return {
        "pipeline": pipeline,
        "queued": RunFactory(pipeline=pipeline),
        "finished": RunFactory(pipeline=pipeline, status=RunStatus.SUCCEEDED),
        "endpoint": endpoint,
    }


# (route, expected status per role in ROLES order)
API_WRITES = {
    "create a run": (
        lambda w: ("post", "/api/elt/runs", {"pipelineId": w["pipeline"].public_id}),
        [403, 403, 201, 201],
    ),
    "report on a run": (
        lambda w: ("patch", f"/api/elt/runs/{w['queued'].public_id}", {"status": "failed"}),
        [403, 403, 200, 403],
    ),
    "replace a run's log": (
        lambda w: ("patch", f"/api/elt/runs/{w['queued'].public_id}", {"logEntries": []}),
        [403, 403, 200, 403],
    ),
    "trigger a pipeline": (
        lambda w: ("post", f"/api/pipelines/{w['pipeline'].public_id}/run", {}),
        [403, 403, 201, 201],
    ),
    "cancel a run": (
        lambda w: ("delete", f"/api/runs/{w['queued'].public_id}", None),
        [403, 403, 403, 200],
    ),
    "re-run a run": (
        lambda w: ("post", f"/api/runs/{w['finished'].public_id}/rerun", None),
        [403, 403, 201, 201],
    ),
    "create a pipeline": (
        lambda w: ("post", "/api/pipelines", {"name": "new_pipeline"}),
        [403, 403, 403, 403],
    ),
    "change a pipeline": (
        lambda w: ("patch", f"/api/pipelines/{w['pipeline'].public_id}", {"description": "x"}),
        [403, 403, 403, 403],
    ),
    "create a webhook endpoint": (
        lambda w: (
            "post",
            "/api/webhooks",
            {"url": "http://127.0.0.1:9/b", "events": ["run.failed"]},
        ),
        [403, 403, 403, 403],
    ),
    "delete a webhook endpoint": (
        lambda w: ("delete", f"/api/webhooks/{w['endpoint'].public_id}", None),
        [403, 403, 403, 403],
    ),
}


@pytest.mark.parametrize("action", list(API_WRITES))
@pytest.mark.parametrize("role_index", range(len(ROLES)), ids=ROLES)
def test_every_role_against_every_api_write(world, action, role_index):
    route, expected = API_WRITES[action]
    method, url, body = route(world)
    client = key_client(person(ROLES[role_index]))
    before = database_state()

    response = getattr(client, method)(url, body, format="json")

    assert response.status_code == expected[role_index], response.content
    if response.status_code == 403:
        refusal = response.json()
        assert refusal["code"] == "permission_denied" and refusal["detail"].endswith(".")
        assert "role" in refusal["detail"] or "permission" in refusal["detail"]
        assert database_state() == before
    elif action != "replace a run's log":  # a runner's reports are recorded when they move
        assert AuditEvent.objects.count() > before["audit"]  # the status; other writes always


@pytest.mark.parametrize("role_index", range(len(ROLES)), ids=ROLES)
def test_reads_need_a_viewer(world, role_index):
    client = key_client(person(ROLES[role_index]))
    expected = [403, 200, 403, 200][role_index]
    for url in (
        "/api/runs",
        f"/api/runs/{world['queued'].public_id}",
        "/api/pipelines",
        "/api/webhooks",
    ):
        assert client.get(url).status_code == expected, url


def test_a_person_who_is_not_a_runner_is_told_so_before_the_body_is_read(world):
    client = key_client(person("operator"))
    response = client.patch(f"/api/elt/runs/{world['queued'].public_id}", b"{not json", "json")
    assert response.status_code == 403
    assert response.json() == {
        "detail": "Reporting on a run needs the runner role.",
        "code": "permission_denied",
        "role": "runner",
    }


def test_a_gateway_token_is_refused_on_the_person_routes(world, gateway_token):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {gateway_token}")
    before = database_state()
    response = client.delete(f"/api/runs/{world['queued'].public_id}")
    assert response.status_code == 401
    assert database_state() == before


PAGE_ACTIONS = {
    "cancel": (lambda w: f"/runs/{w['queued'].public_id}/cancel/", [403, 403, 403, 302]),
    "re-run": (lambda w: f"/runs/{w['finished'].public_id}/rerun/", [403, 403, 302, 302]),
}


@pytest.mark.parametrize("action", list(PAGE_ACTIONS))
@pytest.mark.parametrize("role_index", range(len(ROLES)), ids=ROLES)
def test_every_role_against_every_page_action(client, world, action, role_index):
    url, expected = PAGE_ACTIONS[action]
    client.force_login(person(ROLES[role_index]))
    before = database_state()

    response = client.post(url(world))

    assert response.status_code == expected[role_index]
    if response.status_code == 403:
        assert database_state() == before
        assert "role" in response.content.decode()


def test_page_reads_need_a_viewer(client, world):
    client.force_login(person("runner"))
    assert client.get("/runs/").status_code == 403
    client.force_login(person("viewer"))
    assert client.get("/runs/").status_code == 200


def test_actions_through_the_api_the_pages_and_admin_are_recorded_with_their_source(
    client, world, admin_client
):
    operator = person("operator")
    key_client(operator).delete(f"/api/runs/{world['queued'].public_id}")
    client.force_login(operator)
    client.post(f"/runs/{world['finished'].public_id}/rerun/")
    other = RunFactory(pipeline=world["pipeline"])
    admin_client.post(f"/admin/runs/run/{other.pk}/cancel/")

    records = {
        (event.action, event.source, event.actor_label, event.target_id)
        for event in AuditEvent.objects.filter(target_type="runs.run")
    }
    assert ("run.cancel_requested", "api", "operator-person", world["queued"].public_id) in records
    assert ("run.rerun", "web", "operator-person", world["finished"].public_id) in records
    assert ("run.cancel_requested", "admin", "admin", other.public_id) in records


def test_the_run_carries_its_events_and_only_admins_see_ips(world, admin_client):
    run = world["finished"]
    operator = person("operator")
    key_client(operator).post(f"/api/runs/{run.public_id}/rerun")

    as_viewer = key_client(person("viewer")).get(f"/api/runs/{run.public_id}").json()
    [event] = as_viewer["events"]
    assert event["action"] == "run.rerun" and event["actor"] == "operator-person"
    assert event["source"] == "api" and "ip" not in event
    as_admin = admin_client.get(f"/api/runs/{run.public_id}").json()
    assert as_admin["events"][0]["ip"] == "127.0.0.1"


def test_the_role_groups_hold_what_common_roles_says():
    for role, perms in ROLE_PERMISSIONS.items():
        group = Group.objects.get(name=role.value)
        held = {
            f"{app}.{codename}"
            for app, codename in group.permissions.values_list(
                "content_type__app_label", "codename"
            )
        }
        assert held == {str(perm) for perm in perms}, role


@pytest.mark.django_db(transaction=True)
def test_the_roles_migration_makes_the_groups():
    executor = MigrationExecutor(connection)
    # Back to before the roles, then forward again: the migration alone makes the groups.
    executor.migrate([("common", "0001_audit_event")])
    Group.objects.filter(name__in=list(Role)).delete()
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
    assert set(Group.objects.values_list("name", flat=True)) >= {"viewer", "runner", "operator"}


def test_run_detail_says_who_cancelled_and_reran_and_how(client, world):
    operator = person("operator")
    key_client(operator).delete(f"/api/runs/{world['queued'].public_id}")
    client.force_login(operator)
    client.post(f"/runs/{world['finished'].public_id}/rerun/")

    cancelled = client.get(f"/runs/{world['queued'].public_id}/").content.decode()
    assert "Canceled by operator-person via API" in cancelled
    rerun = client.get(f"/runs/{world['finished'].public_id}/").content.decode()
    new_run = Run.objects.get(rerun_of=world["finished"])
    assert f"Re-run by operator-person via the web app as {new_run.public_id}" in rerun
    queued = client.get(f"/runs/{new_run.public_id}/").content.decode()
    assert "Queued by operator-person via the web app as a re-run of " in queued


def test_admin_shows_each_persons_roles(admin_client):
    person("operator")
    page = admin_client.get("/admin/auth/user/").content.decode()
    assert '<td class="field-roles">operator</td>' in page
    assert '<td class="field-roles">all</td>' in page


def test_comparing_runs_needs_a_viewer(world):
    url = f"/api/runs/{world['finished'].public_id}/compare?with={world['queued'].public_id}"
    refused = key_client(person("nobody")).get(url)
    assert refused.status_code == 403 and refused.json()["role"] == "viewer"
    assert key_client(person("viewer")).get(url).status_code == 200


@pytest.mark.django_db
def test_the_role_groups_come_back_after_a_flush_but_not_on_a_half_migrated_database():
    from django.apps import apps
    from django.contrib.auth.models import Group, Permission

    from common.apps import _restore_missing_roles

    last_app = list(apps.get_app_configs())[-1]
    operator_perms = set(Group.objects.get(name="operator").permissions.values_list("pk"))
    Group.objects.all().delete()
    bulk_run = Permission.objects.get(codename="bulk_run")
    bulk_run_row = (bulk_run.content_type, bulk_run.name, bulk_run.codename)
    bulk_run.delete()  # as before the model's migration ran
    _restore_missing_roles(last_app)
    assert not Group.objects.exists()

    content_type, name, codename = bulk_run_row
    Permission.objects.create(content_type=content_type, name=name, codename=codename)
    _restore_missing_roles(last_app)
    assert set(Group.objects.values_list("name", flat=True)) == {"viewer", "runner", "operator"}
    assert len(Group.objects.get(name="operator").permissions.all()) == len(operator_perms)
