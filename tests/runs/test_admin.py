from datetime import timedelta

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from common.models import AuditEvent
from runs.admin import EstimatedCountPaginator, RunAdmin
from runs.models import Run, RunStatus, TriggerType
from tests.factories import GatewayFactory, PipelineFactory, RunFactory

pytestmark = pytest.mark.django_db

RUNS = "/admin/runs/run/"


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # The default hasher costs a second or more per user; these tests sign in admins.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def add_runs(count: int) -> list[Run]:
    """Runs spread over several gateways and pipelines, with every status and trigger."""
    gateways = [GatewayFactory() for _ in range(3)]
    pipelines = [PipelineFactory(default_gateway=gateway) for gateway in gateways]
    statuses, triggers = RunStatus.values, TriggerType.values
    return [
        RunFactory(
            pipeline=pipelines[index % 3],
            status=statuses[index % len(statuses)],
            trigger_type=triggers[index % len(triggers)],
            started_at=timezone.now(),
            created_by=get_user_model().objects.create(username=f"creator-{count}-{index}"),
        )
        for index in range(count)
    ]


def queries_for(admin_client, url: str) -> list[str]:
    with CaptureQueriesContext(connection) as ctx:
        response = admin_client.get(url)
        assert response.status_code == 200, url
    return [query["sql"] for query in ctx.captured_queries]


@pytest.mark.parametrize(
    "query",
    ["", "?status__exact=running", "?q=run_0", "?gateway__id__exact=1&trigger_type__exact=api"],
)
def test_changelist_query_count_is_the_same_for_5_and_50_runs(admin_client, query):
    add_runs(5)
    few = queries_for(admin_client, RUNS + query)
    add_runs(45)
    many = queries_for(admin_client, RUNS + query)
    assert len(many) == len(few)


def test_changelist_never_counts_the_whole_runs_table(admin_client):
    add_runs(60)
    for sql in queries_for(admin_client, RUNS):
        if "COUNT(" in sql.upper() and "runs_run" in sql:
            assert "LIMIT" in sql.upper(), sql


def test_changelist_lists_runs_with_their_pipeline_and_gateway(admin_client):
    runs = add_runs(6)
    html = admin_client.get(RUNS).content.decode()
    for run in runs:
        assert run.public_id in html
        assert run.pipeline.name in html
    assert "6 runs" in html


def test_filters_narrow_the_list(admin_client):
    runs = add_runs(12)
    running = [run for run in runs if run.status == RunStatus.RUNNING]
    html = admin_client.get(RUNS + "?status__exact=running").content.decode()
    assert all(run.public_id in html for run in running)
    assert all(run.public_id not in html for run in runs if run.status != RunStatus.RUNNING)

    gateway = runs[0].gateway
    html = admin_client.get(RUNS + f"?gateway__id__exact={gateway.pk}").content.decode()
    assert all((run.public_id in html) == (run.gateway == gateway) for run in runs)

    html = admin_client.get(RUNS + f"?pipeline__id__exact={runs[1].pipeline.pk}").content.decode()
    assert all((run.public_id in html) == (run.pipeline == runs[1].pipeline) for run in runs)


def test_search_by_run_id_prefix_and_by_pipeline_name(admin_client):
    runs = add_runs(4)
    target = runs[2]
    html = admin_client.get(RUNS, {"q": target.public_id[:-3]}).content.decode()
    assert target.public_id in html
    assert runs[0].public_id not in html or runs[0].public_id[:-3] == target.public_id[:-3]
    html = admin_client.get(RUNS, {"q": target.pipeline.name}).content.decode()
    assert target.public_id in html
    assert runs[0].public_id not in html
    html = admin_client.get(RUNS, {"q": "nothing-like-this"}).content.decode()
    assert all(run.public_id not in html for run in runs)


def test_paginator_caps_the_count_of_a_filtered_list():
    add_runs(12)

    class Small(EstimatedCountPaginator):
        count_cap = 5

    assert Small(Run.objects.filter(pipeline__isnull=False), 2).count == 5
    assert Small(Run.objects.filter(status=RunStatus.QUEUED), 2).count == 2


@pytest.mark.skipif(connection.vendor != "postgresql", reason="pg_class estimates are PostgreSQL's")
def test_paginator_uses_the_planner_estimate_for_the_whole_table_on_postgresql():
    add_runs(12)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE runs_run")

    class Small(EstimatedCountPaginator):
        count_cap = 5

    with CaptureQueriesContext(connection) as ctx:
        assert Small(Run.objects.all(), 2).count == 12
    assert "pg_class" in ctx.captured_queries[0]["sql"]
    assert not any("COUNT(" in q["sql"].upper() for q in ctx.captured_queries)


def test_run_page_is_read_only_with_cancel_and_rerun(admin_client):
    run = RunFactory(status=RunStatus.RUNNING)
    html = admin_client.get(f"{RUNS}{run.pk}/change/").content.decode()
    assert run.public_id in html
    assert 'name="_save"' not in html
    assert f"{RUNS}{run.pk}/cancel/" in html and f"{RUNS}{run.pk}/rerun/" in html
    assert admin_client.get(f"{RUNS}add/").status_code == 403
    assert admin_client.get(f"{RUNS}{run.pk}/delete/").status_code == 403


def test_cancel_action_cancels_queued_asks_running_and_leaves_final_runs(admin_client, admin_user):
    queued = RunFactory(status=RunStatus.QUEUED)
    running = RunFactory(status=RunStatus.RUNNING)
    done = RunFactory(status=RunStatus.SUCCEEDED)
    response = admin_client.post(
        RUNS,
        {"action": "cancel_selected", "_selected_action": [queued.pk, running.pk, done.pk]},
        follow=True,
    )
    assert "Cancel requested for 2 run(s). 1 already finished" in response.content.decode()
    statuses = dict(Run.objects.values_list("pk", "status"))
    assert statuses[queued.pk] == RunStatus.CANCELED
    assert statuses[running.pk] == RunStatus.CANCEL_REQUESTED
    assert statuses[done.pk] == RunStatus.SUCCEEDED
    events = AuditEvent.objects.filter(action="run.cancel_requested")
    assert sorted(events.values_list("target_id", flat=True)) == sorted(
        [queued.public_id, running.public_id]
    )
    assert all(event.actor == admin_user and event.source == "admin" for event in events)
    assert LogEntry.objects.filter(object_id=str(running.pk), action_flag=CHANGE).exists()


def test_cancel_from_the_run_page_reaches_the_runner(admin_client, agent_client, run):
    claim = agent_client.patch(
        f"/api/agent/runs/{run.public_id}", {"status": "running"}, format="json"
    )
    assert claim.status_code == 200
    assert admin_client.get(f"{RUNS}{run.pk}/cancel/").status_code == 200
    response = admin_client.post(f"{RUNS}{run.pk}/cancel/")
    assert response.status_code == 302
    report = agent_client.patch(
        f"/api/agent/runs/{run.public_id}",
        {"appendLog": {"level": "info", "message": "working"}},
        format="json",
    )
    assert report.json()["status"] == "cancel_requested"
    polled = agent_client.get("/api/agent/runs").json()["data"]
    assert [(item["id"], item["status"]) for item in polled] == [
        (run.public_id, "cancel_requested")
    ]


def test_rerun_action_queues_new_runs_and_audits(admin_client, admin_user):
    failed = RunFactory(status=RunStatus.FAILED)
    response = admin_client.post(
        RUNS, {"action": "rerun_selected", "_selected_action": [failed.pk]}, follow=True
    )
    assert "Queued 1 re-run(s)" in response.content.decode()
    new_run = Run.objects.get(rerun_of=failed)
    assert new_run.status == RunStatus.QUEUED
    assert new_run.created_by == admin_user and new_run.trigger_type == TriggerType.RERUN
    event = AuditEvent.objects.get(action="run.rerun")
    assert event.target_id == failed.public_id
    assert event.details == {"newRunId": new_run.public_id}


def test_rerun_from_the_run_page(admin_client):
    failed = RunFactory(status=RunStatus.FAILED)
    response = admin_client.post(f"{RUNS}{failed.pk}/rerun/")
    new_run = Run.objects.get(rerun_of=failed)
    assert response["Location"] == f"{RUNS}{new_run.pk}/change/"


def test_actions_need_their_permissions(client):
    run = RunFactory(status=RunStatus.RUNNING)
    viewer = get_user_model().objects.create(username="viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_run"))
    client.force_login(viewer)
    html = client.get(RUNS).content.decode()
    assert "cancel_selected" not in html and "rerun_selected" not in html
    assert client.post(f"{RUNS}{run.pk}/cancel/").status_code == 403
    assert client.post(f"{RUNS}{run.pk}/rerun/").status_code == 403
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING

    viewer.user_permissions.add(Permission.objects.get(codename="cancel_run"))
    viewer = get_user_model().objects.get(pk=viewer.pk)  # drop the permission cache
    client.force_login(viewer)
    assert client.post(f"{RUNS}{run.pk}/cancel/").status_code == 302
    run.refresh_from_db()
    assert run.status == RunStatus.CANCEL_REQUESTED


def test_queued_runs_on_a_gateway_that_never_connected_are_flagged(admin_client):
    away = GatewayFactory(name="never-connected")
    here = GatewayFactory(name="here", last_seen_at=timezone.now())
    stuck = RunFactory(pipeline=PipelineFactory(default_gateway=away))
    fine = RunFactory(pipeline=PipelineFactory(default_gateway=here))
    html = admin_client.get(RUNS).content.decode()

    def status_cell(run: Run) -> str:
        return html.split(f">{run.public_id}</a>")[1].split("</td>")[0]

    assert "queued (gateway away)" in status_cell(stuck)
    assert "gateway away" not in status_cell(fine)


def test_sorting_only_by_created_at_whatever_the_url_asks(admin_client):
    older = RunFactory(pipeline=PipelineFactory(default_gateway=GatewayFactory(name="aaa")))
    newer = RunFactory(pipeline=PipelineFactory(default_gateway=GatewayFactory(name="zzz")))
    Run.objects.filter(pk=older.pk).update(created_at=timezone.now() - timedelta(hours=1))

    def order(query: str) -> list[str]:
        html = admin_client.get(RUNS + query).content.decode()
        return sorted([older.public_id, newer.public_id], key=html.index)

    # Column numbers in ?o= count the action checkbox column first.
    gateway_column = RunAdmin.list_display.index("gateway") + 1
    created_at_column = RunAdmin.list_display.index("created_at") + 1
    newest_first = [newer.public_id, older.public_id]
    assert order("") == newest_first
    assert order(f"?o={gateway_column}") == newest_first  # refused: the default order stays
    assert order(f"?o={gateway_column}.-{created_at_column}") == newest_first
    assert order(f"?o={created_at_column}") == newest_first[::-1]
