"""The read API of runs: GET /api/runs (filters, keyset paging), a run, its nodes and logs,
cancel, authentication, permissions and rate limits."""

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import Group, Permission
from django.core import signing
from django.core.cache import cache
from django.db import connection
from django.db.models.sql.compiler import SQLCompiler
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from common.actors import Actor
from common.api.pagination import Position, encode_cursor
from gateways.models import ApiKey
from gateways.services import api_key_issue, credential_revoke
from runs import services
from runs.models import LogLine, Run, RunStatus
from tests.clock import inside_one_window
from tests.factories import GatewayFactory, PipelineFactory, RunFactory, UserFactory

pytestmark = pytest.mark.django_db

LIST_ITEM_KEYS = {
    "id",
    "pipelineId",
    "pipelineName",
    "gatewayId",
    "status",
    "trigger",
    "createdAt",
    "startedAt",
    "finishedAt",
    "durationSeconds",
    "rowsLoaded",
    "bytesLoaded",
    "labels",
    "eta",
}


def at(day: int, hour: int = 12, minute: int = 0) -> datetime:
    return datetime(2025, 3, day, hour, minute, tzinfo=UTC)


def ids(response) -> list[str]:
    return [item["id"] for item in response.json()["data"]]


def grant(user, codename: str) -> None:
    user.user_permissions.add(Permission.objects.get(codename=codename))


def walk(client, url: str, *, limit: int, between_pages=None) -> tuple[list[str], int]:
    """Follow meta.cursor to the end; return every id seen and the number of pages."""
    seen: list[str] = []
    cursor = None
    for pages in range(1, 1000):
        query = f"limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        separator = "&" if "?" in url else "?"
        response = client.get(f"{url}{separator}{query}")
        assert response.status_code == 200, response.content
        seen.extend(ids(response))
        cursor = response.json()["meta"]["cursor"]
        if cursor is None:
            return seen, pages
        if between_pages:
            between_pages(pages)
    raise AssertionError("paging did not end")


def assert_refused(response, param: str, status_code: int = 400) -> None:
    assert response.status_code == status_code, response.content
    body = response.json()
    assert body["code"] == "invalid"
    assert param in body["errors"], body
    assert body["detail"]


# --- list ---------------------------------------------------------------------------------


def test_list_item_has_the_reference_shape(key_client, pipeline, gateway):
    run = RunFactory(
        pipeline=pipeline,
        status=RunStatus.SUCCEEDED,
        trigger_type="schedule",
        started_at=at(27, 2, 0),
        finished_at=at(27, 2, 18) + timedelta(seconds=42),
        telemetry_summary={"rowsLoaded": 5},
    )
    LogLine.objects.create(run=run, seq=1, at=at(27), level="info", message="hidden")

    response = key_client.get("/api/runs")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"data", "meta"}
    assert body["meta"] == {"cursor": None, "sort": "-createdAt", "total": 1}
    [item] = body["data"]
    assert set(item) == LIST_ITEM_KEYS
    assert item["id"] == run.public_id
    assert item["pipelineId"] == pipeline.public_id
    assert item["pipelineName"] == "crm_to_warehouse"
    assert item["gatewayId"] == gateway.public_id
    assert item["status"] == "succeeded"
    assert item["trigger"] == "schedule"
    assert item["startedAt"] == "2025-03-27T02:00:00Z"
    assert item["finishedAt"] == "2025-03-27T02:18:42Z"
    assert item["durationSeconds"] == 1122


def test_list_is_newest_first(key_client, pipeline):
    old = RunFactory(pipeline=pipeline, created_at=at(1))
    new = RunFactory(pipeline=pipeline, created_at=at(3))
    middle = RunFactory(pipeline=pipeline, created_at=at(2))

    assert ids(key_client.get("/api/runs")) == [new.public_id, middle.public_id, old.public_id]


def test_list_default_limit_is_50(key_client, pipeline):
    Run.objects.bulk_create(Run(pipeline=pipeline, created_at=at(1)) for _ in range(51))

    response = key_client.get("/api/runs")

    assert len(response.json()["data"]) == 50
    assert response.json()["meta"]["cursor"] is not None


def test_list_limit_200_is_the_maximum(key_client, pipeline):
    Run.objects.bulk_create(Run(pipeline=pipeline, created_at=at(1)) for _ in range(201))

    assert len(key_client.get("/api/runs?limit=200").json()["data"]) == 200
    assert_refused(key_client.get("/api/runs?limit=201"), "limit")


def test_the_unfiltered_list_is_compiled_once_and_reads_the_table_each_time(
    key_client, pipeline, monkeypatch
):
    for day in range(1, 4):
        RunFactory(pipeline=pipeline, created_at=at(day))
    key_client.get("/api/runs?limit=2")  # the first such request of the process compiles
    compiled = []
    as_sql = SQLCompiler.as_sql

    def counting(self, *args, **kwargs):
        compiled.append(self.query.model)
        return as_sql(self, *args, **kwargs)

    monkeypatch.setattr(SQLCompiler, "as_sql", counting)
    new = RunFactory(pipeline=pipeline, created_at=at(5))
    compiled.clear()

    body = key_client.get("/api/runs?limit=2").json()

    assert Run not in compiled  # neither the page nor its count was compiled again
    assert body["data"][0]["id"] == new.public_id
    assert body["meta"]["total"] == 4
    # A filter, a sort or a cursor builds its statements for the request.
    assert key_client.get("/api/runs?limit=2&status=queued").status_code == 200
    assert Run in compiled


def test_the_unfiltered_list_answers_as_the_same_list_asked_with_its_default_sort(
    key_client, pipeline
):
    now = timezone.now()
    for hours in range(1, 6):  # a baseline of five runs of 100 s
        started = now - timedelta(hours=hours)
        RunFactory(
            pipeline=pipeline,
            status=RunStatus.SUCCEEDED,
            created_at=started,
            started_at=started,
            finished_at=started + timedelta(seconds=100),
        )
    for minutes in (1, 2):
        started = now - timedelta(minutes=minutes)
        RunFactory(
            pipeline=pipeline, status=RunStatus.RUNNING, created_at=started, started_at=started
        )

    def listed(query: str) -> dict:
        body = key_client.get(f"/api/runs?{query}").json()
        for item in body["data"]:  # a running run's duration grows between the two requests
            if item["status"] == RunStatus.RUNNING:
                assert item.pop("durationSeconds") >= 60
        return body

    unfiltered, explicit = listed("limit=3"), listed("limit=3&sort=-createdAt")

    assert unfiltered["data"] == explicit["data"]
    assert [item["eta"] and item["eta"]["basis"] for item in unfiltered["data"]] == [
        "baseline",
        "baseline",
        None,
    ]
    assert unfiltered["meta"].keys() == explicit["meta"].keys()
    assert unfiltered["meta"]["total"] == explicit["meta"]["total"] == 7
    assert unfiltered["meta"]["sort"] == "-createdAt"
    # Its cursor pages on like any other.
    cursor = unfiltered["meta"]["cursor"]
    following = key_client.get(f"/api/runs?limit=3&cursor={cursor}").json()
    assert len(following["data"]) == 3
    assert not {item["id"] for item in following["data"]} & {i["id"] for i in unfiltered["data"]}


@pytest.fixture
def mixed_runs(pipeline, gateway):
    """Runs across two pipelines, two gateways, statuses, triggers and days."""
    other_gateway = GatewayFactory(name="edge-2")
    other_pipeline = PipelineFactory(name="billing", default_gateway=other_gateway)
    return {
        "a": RunFactory(pipeline=pipeline, status="succeeded", trigger_type="schedule",
                        created_at=at(1, 0, 0)),
        "b": RunFactory(pipeline=pipeline, status="failed", trigger_type="manual",
                        created_at=at(2, 23, 59)),
        "c": RunFactory(pipeline=other_pipeline, status="running", trigger_type="api",
                        created_at=at(3, 0, 0)),
        "d": RunFactory(pipeline=other_pipeline, status="canceled", trigger_type="schedule",
                        gateway=gateway, created_at=at(4, 12, 0)),
        "e": RunFactory(pipeline=pipeline, status="queued", trigger_type="api",
                        gateway=None, created_at=at(5, 6, 0)),
    }  # fmt: skip


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status=failed", "b"),
        ("status=succeeded,failed", "ba"),
        ("status=succeeded&status=running", "ca"),
        ("status=cancelled", "d"),
        ("status=queued, running", "ec"),
        ("trigger=schedule", "da"),
        ("trigger=api", "ec"),
        ("dateRange=2025-03-02..2025-03-03", "cb"),
        ("dateRange=2025-03-01..2025-03-01", "a"),
        ("dateRange=2025-03-04..", "ed"),
        ("dateRange=..2025-03-02", "ba"),
        ("from=2025-03-03&to=2025-03-04", "dc"),
        ("from=2025-03-02T23:59:00Z", "edcb"),
        ("to=2025-03-03T00:00:00Z", "ba"),
        ("from=2025-03-02T12:00:00%2B00:00&to=2025-03-04T12:00:00Z", "cb"),
        ("to=2025-03-01", "a"),
        ("status=queued,succeeded,failed&trigger=api", "e"),
        ("status=succeeded,canceled&dateRange=2025-03-01..2025-03-04&trigger=schedule", "da"),
        ("trigger=schedule&from=2025-03-02", "d"),
        ("", "edcba"),
    ],
)
def test_list_filters(key_client, mixed_runs, query, expected):
    response = key_client.get(f"/api/runs?{query}")

    assert response.status_code == 200, response.content
    assert ids(response) == [mixed_runs[key].public_id for key in expected]


def test_list_filters_by_pipeline_and_gateway(key_client, mixed_runs, pipeline, gateway):
    other_pipeline = mixed_runs["c"].pipeline
    other_gateway = mixed_runs["c"].gateway

    by_pipeline = key_client.get(f"/api/runs?pipelineId={pipeline.public_id}")
    by_gateway = key_client.get(f"/api/runs?gatewayId={gateway.public_id}")
    both = key_client.get(
        f"/api/runs?pipelineId={other_pipeline.public_id}&gatewayId={gateway.public_id}"
    )
    with_status = key_client.get(
        f"/api/runs?pipelineId={other_pipeline.public_id}&gatewayId={other_gateway.public_id}"
        "&status=running,failed&dateRange=2025-03-03..2025-03-03&trigger=api"
    )

    runs = mixed_runs
    assert ids(by_pipeline) == [runs[key].public_id for key in "eba"]
    assert ids(by_gateway) == [runs[key].public_id for key in "dba"]
    assert ids(both) == [runs["d"].public_id]
    assert ids(with_status) == [runs["c"].public_id]


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("status=bogus", "status"),
        ("status=queued,bogus", "status"),
        ("trigger=cron", "trigger"),
        ("dateRange=2025-13-01..", "dateRange"),
        ("dateRange=2025-03-01", "dateRange"),
        ("dateRange=2025-03-05..2025-03-01", "dateRange"),
        ("dateRange=..", "dateRange"),
        ("from=yesterday", "from"),
        ("from=2025-03-01T00:00:00", "from"),
        ("to=2025-02-30", "to"),
        ("from=2025-03-05&to=2025-03-01", "from"),
        ("to=9999-12-31", "to"),
        ("dateRange=..9999-12-31", "dateRange"),
        ("from=0001-01-01T00:00:00%2B14:00", "from"),
        ("to=9999-12-31T23:59:59-14:00", "to"),
        ("limit=0", "limit"),
        ("limit=10000", "limit"),
        ("limit=-1", "limit"),
        ("limit=2.5", "limit"),
        ("limit=ten", "limit"),
        ("limit=%C2%B2", "limit"),
        ("cursor=eyJpZCI6InJ1bl8wMWo3ajFrMiJ9", "cursor"),
        ("cursor=%00", "cursor"),
        ("pipelineId=pl_doesnotexist", "pipelineId"),
        ("pipelineId=gw_01j8k2m4", "pipelineId"),
        ("gatewayId=nope", "gatewayId"),
        ("pipelineId=%00", "pipelineId"),
    ],
)
def test_list_refuses_bad_parameters(key_client, run, query, param):
    assert_refused(key_client.get(f"/api/runs?{query}"), param)


def test_list_names_every_bad_parameter_at_once(key_client, run):
    response = key_client.get("/api/runs?status=bogus&limit=0&dateRange=x")

    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"status", "limit", "dateRange"}


def test_list_refuses_a_tampered_cursor(key_client, pipeline):
    for day in range(1, 6):
        RunFactory(pipeline=pipeline, created_at=at(day))
    cursor = key_client.get("/api/runs?limit=2").json()["meta"]["cursor"]
    tampered = cursor[:-1] + ("A" if cursor[-1] != "A" else "B")

    assert_refused(key_client.get(f"/api/runs?limit=2&cursor={tampered}"), "cursor")
    assert_refused(key_client.get(f"/api/runs?limit=2&cursor=x{cursor}"), "cursor")


# --- paging -------------------------------------------------------------------------------


def test_paging_through_five_runs_by_two_gives_each_once(key_client, pipeline):
    runs = [RunFactory(pipeline=pipeline, created_at=at(day)) for day in range(1, 6)]

    seen, pages = walk(key_client, "/api/runs", limit=2)

    assert seen == [run.public_id for run in reversed(runs)]
    assert pages == 3


def test_paging_with_identical_timestamps_gives_each_once(key_client, pipeline):
    Run.objects.bulk_create(Run(pipeline=pipeline, created_at=at(1)) for _ in range(7))

    seen, _ = walk(key_client, "/api/runs", limit=3)

    assert sorted(seen) == sorted(Run.objects.values_list("public_id", flat=True))
    assert len(set(seen)) == 7


def test_paging_while_new_runs_arrive_repeats_and_skips_nothing(key_client, pipeline):
    original = {RunFactory(pipeline=pipeline).public_id for _ in range(9)}
    arrived = []

    def new_run_arrives(page: int) -> None:
        arrived.append(RunFactory(pipeline=pipeline).public_id)

    seen, _ = walk(key_client, "/api/runs", limit=2, between_pages=new_run_arrives)

    assert len(seen) == len(set(seen))
    assert original <= set(seen)
    assert not set(arrived) & set(seen)


def test_paging_keeps_the_filters(key_client, pipeline):
    for day in range(1, 8):
        RunFactory(pipeline=pipeline, created_at=at(day), status="failed" if day % 2 else "queued")

    seen, pages = walk(key_client, "/api/runs?status=failed", limit=2)

    expected = Run.objects.filter(status="failed").order_by("-created_at")
    assert seen == [run.public_id for run in expected]
    assert pages == 2


def test_paging_through_thousands_of_runs(key_client, pipeline):
    start = timezone.now() - timedelta(days=30)
    Run.objects.bulk_create(
        Run(pipeline=pipeline, created_at=start + timedelta(minutes=index // 3))
        for index in range(2500)
    )

    seen, pages = walk(key_client, "/api/runs", limit=200)

    assert len(seen) == len(set(seen)) == 2500
    assert pages == 13


def page_queries(client, cursor: str | None, query: str = "") -> list[str]:
    url = "/api/runs?limit=5" + query + (f"&cursor={cursor}" if cursor else "")
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    return [entry["sql"] for entry in captured.captured_queries], response.json()["meta"]["cursor"]


def test_deep_pages_cost_the_same_queries_as_the_first(key_client, pipeline):
    start = at(1)
    Run.objects.bulk_create(
        Run(pipeline=pipeline, created_at=start + timedelta(minutes=index)) for index in range(60)
    )
    query = f"&pipelineId={pipeline.public_id}&status=queued"

    key_client.get("/api/runs?limit=1")  # the key's first use of the minute records it
    first, cursor = page_queries(key_client, None, query)
    second, cursor = page_queries(key_client, cursor, query)
    for _ in range(8):
        deep, cursor = page_queries(key_client, cursor, query)

    assert len(first) == len(second) == len(deep)
    run_queries = [sql for sql in deep if 'FROM "runs_run"' in sql]
    # The page, and meta.total's count bounded by a LIMIT subquery.
    assert len(run_queries) == 2
    [page_sql] = [sql for sql in run_queries if "COUNT(" not in sql.upper()]
    [count_sql] = [sql for sql in run_queries if "COUNT(" in sql.upper()]
    assert "LIMIT 10001" in count_sql
    assert '"runs_run"."created_at" <=' in page_sql
    assert "OFFSET" not in page_sql.upper()
    assert "COUNT(" not in page_sql.upper()
    assert '"runs_run"."telemetry_summary"' not in page_sql


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="EXPLAIN output is PostgreSQL's; runs there in CI"
)
def test_deep_page_plan_uses_the_created_index_on_postgresql(key_client, pipeline):
    start = timezone.now() - timedelta(days=60)
    Run.objects.bulk_create(
        (
            Run(pipeline=pipeline, created_at=start + timedelta(seconds=index))
            for index in range(10000)
        ),
        batch_size=2000,
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE runs_run")
    # The position of page 150 of 50: what walking meta.cursor that far would hand back.
    deep = Run.objects.order_by("-created_at", "-id")[7500]
    deep_cursor = encode_cursor(Position(value=deep.created_at, pk=deep.pk))

    with CaptureQueriesContext(connection) as captured:
        response = key_client.get(f"/api/runs?limit=50&cursor={deep_cursor}")
    [page_sql] = [
        q["sql"]
        for q in captured.captured_queries
        if 'FROM "runs_run"' in q["sql"] and "COUNT(" not in q["sql"].upper()
    ]
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {page_sql}")
        plan = "\n".join(row[0] for row in cursor.fetchall())

    assert response.json()["data"][0]["id"] != deep.public_id
    assert "Index Scan" in plan or "Index Only Scan" in plan, plan
    assert "run_created_idx" in plan, plan
    assert "Seq Scan on runs_run" not in plan, plan


# --- one run ------------------------------------------------------------------------------


def test_detail_has_the_reference_shape(key_client, pipeline, gateway):
    run = RunFactory(
        pipeline=pipeline,
        trigger_type="schedule",
        trigger={"scheduleId": "sch_01"},
        status=RunStatus.SUCCEEDED,
        started_at=at(27, 2, 0),
        finished_at=at(27, 2, 18) + timedelta(seconds=42),
        telemetry_summary={"rowsLoaded": 2450000, "bytesLoaded": 1073741824, "progress": 100},
    )
    services.run_update(
        actor=Actor.system(), run=run, changes={"append_telemetry_sample": {"rowsLoaded": 10}}
    )

    response = key_client.get(f"/api/runs/{run.public_id}")

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == run.public_id
    assert body["pipelineId"] == pipeline.public_id
    assert body["pipelineName"] == "crm_to_warehouse"
    assert body["status"] == "succeeded"
    assert body["trigger"] == {"type": "schedule", "scheduleId": "sch_01"}
    assert body["startedAt"] == "2025-03-27T02:00:00Z"
    assert body["finishedAt"] == "2025-03-27T02:18:42Z"
    assert body["durationSeconds"] == 1122
    assert body["metrics"] == {
        "rowsRead": 2450000,
        "rowsWritten": 2450000,
        "bytesShuffled": 1073741824,
    }
    assert body["error"] is None
    assert body["errorSummary"] is None
    assert body["gateway"] == {"id": gateway.public_id, "name": "edge-1"}
    assert body["telemetry"]["summary"]["progress"] == 100
    [sample] = body["telemetry"]["samples"]
    assert sample["rowsLoaded"] == 10
    assert sample["at"].endswith("Z")
    assert body["createdAt"].endswith("Z")


def test_detail_metrics_prefer_what_the_runner_reported(key_client, pipeline):
    run = RunFactory(
        pipeline=pipeline,
        telemetry_summary={
            "rowsLoaded": 90,
            "rowsRead": 100,
            "rowsWritten": 80,
            "bytesShuffled": 4096,
            "costUnits": 1.5,
        },
    )

    metrics = key_client.get(f"/api/runs/{run.public_id}").json()["metrics"]

    assert metrics == {"rowsRead": 100, "rowsWritten": 80, "bytesShuffled": 4096, "costUnits": 1.5}


def test_detail_of_a_failed_run_has_the_error(key_client, pipeline):
    run = RunFactory(pipeline=pipeline, gateway=None, status=RunStatus.RUNNING)
    services.run_update(
        actor=Actor.system(),
        run=run,
        changes={
            "status": "failed",
            "error_summary": "connect failed: timeout after 30s",
            "telemetry_summary": {"stackRef": "stk_42"},
        },
    )

    body = key_client.get(f"/api/runs/{run.public_id}").json()

    assert body["status"] == "failed"
    assert body["error"]["stackRef"] == "stk_42"
    assert body["error"]["message"] == "connect failed: timeout after 30s"
    assert body["errorSummary"] == body["error"]["message"]
    assert body["gateway"] is None
    assert body["metrics"] == {"rowsRead": None, "rowsWritten": None, "bytesShuffled": None}


@pytest.mark.parametrize(
    "run_id", ["run_doesnotexist", "pl_01j8k2m4", "12", "run_" + "x" * 300, "%00", "r%C3%A9"]
)
def test_unknown_run_ids_are_404(key_client, run, run_id):
    for suffix in ("", "/nodes", "/logs"):
        response = key_client.get(f"/api/runs/{run_id}{suffix}")
        assert response.status_code == 404, (suffix, response.content)
        assert response.json()["code"] == "not_found"


def test_nodes(key_client, run):
    services.run_update(actor=Actor.system(),
        run=run,
        changes={
            "nodes": [
                {"nodeId": "n_source", "type": "source.postgres", "status": "succeeded",
                 "startedAt": at(27, 2, 0), "finishedAt": at(27, 2, 4),
                 "metrics": {"rowsOut": 2450000}},
                {"nodeId": "n_sink", "type": "destination.snowflake", "status": "running",
                 "retries": 1},
            ]
        },
    )  # fmt: skip

    response = key_client.get(f"/api/runs/{run.public_id}/nodes")

    assert response.status_code == 200
    body = response.json()
    assert body["runId"] == run.public_id
    assert body["nodes"][0] == {
        "nodeId": "n_source",
        "type": "source.postgres",
        "status": "succeeded",
        "startedAt": "2025-03-27T02:00:00Z",
        "finishedAt": "2025-03-27T02:04:00Z",
        "retries": 0,
        "metrics": {"rowsOut": 2450000},
    }
    assert body["nodes"][1]["nodeId"] == "n_sink"
    assert body["nodes"][1]["startedAt"] is None
    assert body["nodes"][1]["retries"] == 1


# --- logs ---------------------------------------------------------------------------------


def append(run: Run, message: str, node_id: str | None = None, level: str = "info") -> None:
    services.run_update(
        actor=Actor.system(),
        run=run,
        changes={"append_log": {"level": level, "message": message, "nodeId": node_id}},
    )


def messages(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [line["message"] for line in response.json()["lines"]]


def test_logs_shape(key_client, run):
    append(run, "Started JDBC read", "n_source")
    append(run, "no node", None, "warn")

    response = key_client.get(f"/api/runs/{run.public_id}/logs")

    body = response.json()
    assert body["runId"] == run.public_id
    assert set(body) == {"runId", "lines", "nextCursor", "logRemovedAfterDays"}
    assert body["logRemovedAfterDays"] is None
    first, second = body["lines"]
    assert set(first) == {"ts", "level", "nodeId", "message"}
    assert first["nodeId"] == "n_source"
    assert first["level"] == "info"
    assert first["ts"].endswith("Z")
    assert second == {**second, "nodeId": None, "level": "warn", "message": "no node"}
    assert body["nextCursor"].startswith("crs_")


def test_logs_next_cursor_returns_only_newer_lines(key_client, run):
    url = f"/api/runs/{run.public_id}/logs"
    append(run, "one")
    append(run, "two")
    cursor = key_client.get(url).json()["nextCursor"]

    nothing_new = key_client.get(f"{url}?since={cursor}")
    append(run, "three")
    newer = key_client.get(f"{url}?since={cursor}")
    after = key_client.get(f"{url}?since={newer.json()['nextCursor']}")

    assert messages(nothing_new) == []
    assert nothing_new.json()["nextCursor"] == cursor
    assert messages(newer) == ["three"]
    assert messages(after) == []


def test_logs_filter_by_node_and_follow(key_client, run):
    url = f"/api/runs/{run.public_id}/logs"
    append(run, "a1", "a")
    append(run, "b1", "b")
    first = key_client.get(f"{url}?nodeId=a")
    append(run, "b2", "b")
    append(run, "a2", "a")
    second = key_client.get(f"{url}?nodeId=a&since={first.json()['nextCursor']}")

    assert messages(first) == ["a1"]
    assert messages(second) == ["a2"]


def test_logs_since_a_timestamp(key_client, run):
    services.run_update(
        actor=Actor.system(),
        run=run,
        changes={
            "log_entries": [
                {"at": at(1, 10), "level": "info", "message": "early"},
                {"at": at(1, 11), "level": "info", "message": "late"},
            ]
        },
    )
    url = f"/api/runs/{run.public_id}/logs"

    since_ten = key_client.get(f"{url}?since=2025-03-01T10:00:00Z")
    since_noon = key_client.get(f"{url}?since=2025-03-01T12:00:00%2B00:00")
    append(run, "newest")
    followed = key_client.get(f"{url}?since={since_noon.json()['nextCursor']}")

    assert messages(since_ten) == ["late"]
    assert messages(since_noon) == []
    assert messages(followed) == ["newest"]


def test_logs_hold_only_lines_within_the_cap(key_client, run, settings):
    settings.RUN_LOG_CAP = 3
    services.run_update(
        actor=Actor.system(),
        run=run,
        changes={"log_entries": [{"level": "info", "message": str(i)} for i in range(3)]},
    )
    append(run, "3")
    append(run, "4")

    assert messages(key_client.get(f"/api/runs/{run.public_id}/logs")) == ["2", "3", "4"]


@pytest.mark.parametrize(
    "since",
    [
        "crs_1_0000",
        "crs_",
        "crs_999_abc",
        "yesterday",
        "2025-03-01T10:00:00",
        "%00",
        "0001-01-01T00:00:00%2B14:00",
        "9999-12-31T23:59:59-14:00",
    ],
)
def test_logs_refuse_a_bad_since(key_client, run, since):
    append(run, "one")

    assert_refused(key_client.get(f"/api/runs/{run.public_id}/logs?since={since}"), "since")


def test_logs_refuse_a_cursor_of_another_run(key_client, run, pipeline):
    other = RunFactory(pipeline=pipeline)
    append(run, "one")
    cursor = key_client.get(f"/api/runs/{run.public_id}/logs").json()["nextCursor"]

    assert_refused(key_client.get(f"/api/runs/{other.public_id}/logs?since={cursor}"), "since")


def test_logs_refuse_a_tampered_cursor(key_client, run):
    append(run, "one")
    append(run, "two")
    cursor = key_client.get(f"/api/runs/{run.public_id}/logs").json()["nextCursor"]
    # The same position signed for another list (the runs list's salt), and the signature of
    # this one moved onto a rewound position: both refused.
    payload = signing.loads(cursor.removeprefix("crs_"), salt="runs.log-cursor")
    assert payload == [run.public_id, 2]
    foreign = "crs_" + signing.dumps(payload, salt="runs.keyset-cursor", compress=True)
    signature = cursor.removeprefix("crs_").rsplit(":", 1)[1]
    rewound_value = signing.dumps([run.public_id, 0], salt="runs.log-cursor", compress=True)
    rewound = "crs_" + rewound_value.rsplit(":", 1)[0] + ":" + signature

    for forged in (foreign, rewound):
        assert_refused(
            key_client.get(f"/api/runs/{run.public_id}/logs", {"since": forged}), "since"
        )
    assert key_client.get(f"/api/runs/{run.public_id}/logs", {"since": cursor}).status_code == 200


# --- cancel -------------------------------------------------------------------------------


@pytest.fixture
def canceller(user):
    grant(user, "cancel_run")
    return user


def test_cancel_a_queued_run_cancels_it(key_client, canceller, run):
    response = key_client.delete(f"/api/runs/{run.public_id}")

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == run.public_id
    assert body["status"] == "canceled"
    assert body["message"]
    run.refresh_from_db()
    assert run.status == "canceled"
    assert run.finished_at is not None


def test_cancel_a_running_run_asks_its_runner(key_client, agent_client, canceller, run):
    services.run_update(actor=Actor.system(), run=run, changes={"status": "running"})

    first = key_client.delete(f"/api/runs/{run.public_id}")
    again = key_client.delete(f"/api/runs/{run.public_id}")
    runner_sees = agent_client.get(f"/api/agent/runs/{run.public_id}")

    assert first.status_code == again.status_code == 200
    assert first.json()["status"] == again.json()["status"] == "cancel_requested"
    assert runner_sees.json()["status"] == "cancel_requested"


@pytest.mark.parametrize("final", ["succeeded", "failed", "canceled"])
def test_cancel_a_final_run_is_409_and_changes_nothing(key_client, canceller, pipeline, final):
    run = RunFactory(pipeline=pipeline, status=final, finished_at=at(1))

    response = key_client.delete(f"/api/runs/{run.public_id}")

    assert response.status_code == 409
    assert response.json()["code"] == "conflict"
    run.refresh_from_db()
    assert run.status == final
    assert run.finished_at == at(1)


def test_cancel_needs_the_cancel_permission(key_client, run):
    response = key_client.delete(f"/api/runs/{run.public_id}")

    assert response.status_code == 403
    assert response.json()["detail"] == "Cancelling a run needs the operator role."
    assert response.json()["role"] == "operator"
    run.refresh_from_db()
    assert run.status == "queued"


def test_cancel_an_unknown_run_is_404(key_client, canceller):
    assert key_client.delete("/api/runs/run_nope").status_code == 404


# --- authentication -----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/runs", "/api/pipelines"])
def test_no_credentials_is_401(path):
    response = APIClient().get(path)

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["code"] == "not_authenticated"


def test_a_gateway_token_is_refused(agent_client, run):
    for method, path in [
        ("get", "/api/runs"),
        ("get", f"/api/runs/{run.public_id}"),
        ("get", f"/api/runs/{run.public_id}/logs"),
        ("delete", f"/api/runs/{run.public_id}"),
        ("get", "/api/pipelines"),
        ("post", f"/api/pipelines/{run.pipeline.public_id}/run"),
    ]:
        response = getattr(agent_client, method)(path)
        assert response.status_code == 401, (method, path)
    run.refresh_from_db()
    assert run.status == "queued"
    assert Run.objects.count() == 1


def test_a_revoked_key_is_refused(key_client, user, run):
    credential_revoke(actor=Actor.system(), credential=ApiKey.objects.get(user=user))

    assert key_client.get("/api/runs").status_code == 401


def test_a_signed_in_session_reads_and_needs_csrf_to_cancel(user, run):
    grant(user, "cancel_run")
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(user)

    listed = client.get("/api/runs")
    refused = client.delete(f"/api/runs/{run.public_id}")

    assert ids(listed) == [run.public_id]
    assert refused.status_code == 403
    run.refresh_from_db()
    assert run.status == "queued"


# --- rate limits --------------------------------------------------------------------------


@pytest.fixture
def tight_limits(settings):
    cache.clear()
    inside_one_window(60, margin=10)  # a minute's counts, all in one minute
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"api_key": "3/min", "gateway": "2/min"},
    }
    yield
    cache.clear()


def viewer():
    person = UserFactory()
    person.groups.add(Group.objects.get(name="viewer"))
    return person


def test_api_keys_are_rate_limited_each_on_its_own(tight_limits, key_client, user, run):
    answers = [key_client.get("/api/runs").status_code for _ in range(3)]
    limited = key_client.get(f"/api/runs/{run.public_id}")
    other = APIClient()
    other.credentials(
        HTTP_AUTHORIZATION=f"Bearer {api_key_issue(actor=Actor.system(), user=viewer())[1]}"
    )

    assert answers == [200, 200, 200]
    assert limited.status_code == 429
    assert int(limited["Retry-After"]) > 0
    assert limited.json()["code"] == "throttled"
    assert other.get("/api/runs").status_code == 200


def test_sessions_are_not_limited_by_the_key_rate(tight_limits, user, run):
    client = APIClient()
    client.force_login(user)

    assert {client.get("/api/runs").status_code for _ in range(5)} == {200}


def test_gateway_tokens_are_rate_limited(tight_limits, agent_client, run):
    answers = [agent_client.get("/api/agent/runs").status_code for _ in range(3)]

    assert answers == [200, 200, 429]
