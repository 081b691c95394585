"""Sets of runs through the API: labels, exclusions, sorting under the keyset cursor, bounded
totals, the export and the log download (issue 14, the list side)."""

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from common.actors import Actor
from common.roles import Role
from gateways.services import api_key_issue
from pipelines.models import Pipeline
from runs.api import exports
from runs.filters import RUN_SORTS
from runs.models import LogLine, Run, RunStatus
from tests.conftest import key_client_of
from tests.factories import GatewayFactory, PipelineFactory, RunFactory, UserFactory
from tests.runs.conftest import report, snapshot

pytestmark = pytest.mark.django_db

START = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def client_with_roles(username: str, *roles: str) -> APIClient:
    person = UserFactory(username=username)
    person.groups.add(*Group.objects.filter(name__in=roles))
    return key_client_of(person)


@pytest.fixture
def operator_key_client(db) -> APIClient:
    return client_with_roles("olga", Role.OPERATOR, Role.VIEWER)


def assert_refused(response, field: str, status_code: int = 400) -> dict:
    assert response.status_code == status_code, response.content
    body = response.json()
    assert field in body["errors"], body
    assert body["detail"]
    return body


def ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [item["id"] for item in response.json()["data"]]


# --- labels: where they come from ------------------------------------------------------------


def test_a_run_starts_with_the_pipeline_labels_overlaid_with_its_own(key_client, pipeline):
    Pipeline.objects.filter(pk=pipeline.pk).update(labels={"team": "finance", "env": "dev"})

    response = key_client.post(
        "/api/elt/runs",
        {"pipelineId": pipeline.public_id, "labels": {"env": "prod", "owner": "ana"}},
        format="json",
    )

    assert response.status_code == 201, response.content
    assert response.json()["labels"] == {"team": "finance", "env": "prod", "owner": "ana"}
    run = Run.objects.get(public_id=response.json()["id"])
    assert run.labels == {"team": "finance", "env": "prod", "owner": "ana"}
    listed = key_client.get("/api/runs").json()["data"][0]
    assert listed["labels"] == run.labels
    assert key_client.get(f"/api/runs/{run.public_id}").json()["labels"] == run.labels
    assert key_client.get(f"/api/elt/runs/{run.public_id}").json()["labels"] == run.labels


def test_triggering_a_pipeline_takes_labels(operator_key_client, pipeline):
    Pipeline.objects.filter(pk=pipeline.pk).update(labels={"team": "finance"})

    response = operator_key_client.post(
        f"/api/pipelines/{pipeline.public_id}/run", {"labels": {"env": "prod"}}, format="json"
    )

    assert response.status_code == 201, response.content
    assert response.json()["labels"] == {"team": "finance", "env": "prod"}


def test_a_runner_patch_merges_labels_and_null_removes_a_key(agent_client, run):
    Run.objects.filter(pk=run.pk).update(labels={"team": "finance", "env": "dev"})

    response = agent_client.patch(
        f"/api/agent/runs/{run.public_id}",
        {"labels": {"env": None, "batch": "2025-03-01"}},
        format="json",
    )

    assert response.status_code == 200, response.content
    assert response.json()["labels"] == {"team": "finance", "batch": "2025-03-01"}
    run.refresh_from_db()
    assert run.labels == {"team": "finance", "batch": "2025-03-01"}


def test_a_rerun_carries_the_labels(operator_key_client, pipeline):
    run = RunFactory(pipeline=pipeline, status=RunStatus.FAILED, labels={"team": "finance"})

    response = operator_key_client.post(f"/api/runs/{run.public_id}/rerun")

    assert response.status_code == 201, response.content
    assert response.json()["labels"] == {"team": "finance"}
    assert Run.objects.get(public_id=response.json()["id"]).labels == {"team": "finance"}


def test_pipelines_api_sets_and_replaces_default_labels(client, db):
    admin = UserFactory(username="root", is_staff=True, is_superuser=True)
    _, raw = api_key_issue(actor=Actor.system(), user=admin)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")

    created = api.post(
        "/api/pipelines", {"name": "ledger", "labels": {"team": "finance"}}, format="json"
    )
    assert created.status_code == 201, created.content
    assert created.json()["labels"] == {"team": "finance"}
    pipeline_id = created.json()["id"]
    changed = api.patch(f"/api/pipelines/{pipeline_id}", {"labels": {"env": "prod"}}, format="json")
    assert changed.status_code == 200, changed.content
    assert changed.json()["labels"] == {"env": "prod"}
    assert Pipeline.objects.get(public_id=pipeline_id).labels == {"env": "prod"}

    before = Pipeline.objects.get(public_id=pipeline_id).labels
    refused = api.patch(
        f"/api/pipelines/{pipeline_id}", {"labels": {"Bad Key": "x"}}, format="json"
    )
    assert_refused(refused, "labels")
    assert Pipeline.objects.get(public_id=pipeline_id).labels == before


# --- labels: bad input -----------------------------------------------------------------------


BAD_LABELS = [
    pytest.param(["team", "finance"], "JSON object", id="not-an-object"),
    pytest.param({"Team": "finance"}, "Invalid label key", id="upper-case-key"),
    pytest.param({"a" * 64: "x"}, "Invalid label key", id="key-too-long"),
    pytest.param({"": "x"}, "Invalid label key", id="empty-key"),
    pytest.param({"team": 5}, "must be a string", id="number-value"),
    pytest.param({"team": None}, "must be a string", id="null-on-create"),
    pytest.param({"team": "x" * 201}, "longer than 200", id="value-too-long"),
    pytest.param({f"k{index}": "v" for index in range(21)}, "At most 20", id="21-labels"),
]


@pytest.mark.parametrize(("labels", "reason"), BAD_LABELS)
def test_bad_labels_on_create_are_a_400_naming_labels(key_client, pipeline, labels, reason):
    before = Run.objects.count()

    response = key_client.post(
        "/api/elt/runs", {"pipelineId": pipeline.public_id, "labels": labels}, format="json"
    )

    body = assert_refused(response, "labels")
    assert reason in body["errors"]["labels"][0]
    assert Run.objects.count() == before


def test_pipeline_defaults_and_run_labels_together_over_20_are_refused(key_client, pipeline):
    Pipeline.objects.filter(pk=pipeline.pk).update(labels={f"p{i}": "v" for i in range(15)})

    response = key_client.post(
        "/api/elt/runs",
        {"pipelineId": pipeline.public_id, "labels": {f"r{i}": "v" for i in range(6)}},
        format="json",
    )

    assert "At most 20" in assert_refused(response, "labels")["errors"]["labels"][0]
    assert not Run.objects.exists()


@pytest.mark.parametrize(
    "labels",
    [
        pytest.param({"Bad": "x"}, id="bad-key"),
        pytest.param({"team": 1}, id="number"),
        pytest.param({f"k{index}": "v" for index in range(20)}, id="merge-over-20"),
        pytest.param("team:finance", id="string"),
    ],
)
def test_a_patch_with_bad_labels_changes_nothing(agent_client, run, labels):
    Run.objects.filter(pk=run.pk).update(labels={"team": "finance"})
    before = snapshot(run)

    response = agent_client.patch(
        f"/api/agent/runs/{run.public_id}",
        {"labels": labels, "appendLog": {"level": "info", "message": "hello"}},
        format="json",
    )

    assert_refused(response, "labels")
    assert snapshot(run) == before


# --- label filters and exclusions ----------------------------------------------------------


@pytest.fixture
def labelled(pipeline, gateway):
    other_pipeline = PipelineFactory(name="noisy")
    other_gateway = GatewayFactory(name="edge-2")
    rows = [
        ("a", pipeline, gateway, RunStatus.SUCCEEDED, "api", {"team": "finance", "env": "prod"}),
        ("b", pipeline, gateway, RunStatus.FAILED, "schedule", {"team": "finance", "env": "dev"}),
        ("c", other_pipeline, other_gateway, RunStatus.FAILED, "api", {"team": "growth"}),
        ("d", pipeline, None, RunStatus.QUEUED, "manual", {}),
        ("e", other_pipeline, gateway, RunStatus.SUCCEEDED, "schedule", {"team": "finance"}),
    ]
    runs = {}
    for index, (name, pipe, gw, status, trigger, labels) in enumerate(rows):
        runs[name] = RunFactory(
            pipeline=pipe,
            gateway=gw,
            status=status,
            trigger_type=trigger,
            labels=labels,
            created_at=START + timedelta(minutes=index),
        )
    return {"runs": runs, "other_pipeline": other_pipeline, "other_gateway": other_gateway}


def names(response, labelled) -> set[str]:
    by_id = {run.public_id: name for name, run in labelled["runs"].items()}
    return {by_id[run_id] for run_id in ids(response)}


def test_label_filters_all_must_match(key_client, labelled):
    assert names(key_client.get("/api/runs?label=team:finance"), labelled) == {"a", "b", "e"}
    both = key_client.get("/api/runs?label=team:finance&label=env:prod")
    assert names(both, labelled) == {"a"}
    assert names(key_client.get("/api/runs?label=env:prod&label=env:dev"), labelled) == set()
    assert names(key_client.get("/api/runs?label=team:nobody"), labelled) == set()


def test_label_keys_are_matched_as_written_on_both_databases(key_client, pipeline):
    """Keys of digits, or with ``__`` or dots, are keys: never an array index, an ORM lookup or
    a JSON path."""
    odd = RunFactory(pipeline=pipeline, labels={"2024": "q1", "team__contains": "x", "a.b": "c"})
    plain = RunFactory(pipeline=pipeline, labels={"team": "x", "a": "c"})

    for query in ("label=2024:q1", "label=team__contains:x", "label=a.b:c"):
        assert ids(key_client.get(f"/api/runs?{query}")) == [odd.public_id], query
    for query in ("label=team__gt:a", "label=team__isnull:x", "label=team__regex:("):
        response = key_client.get(f"/api/runs?{query}")
        assert response.status_code == 200 and ids(response) == [], query
    excluded = key_client.get("/api/runs?excludeLabel=team__contains:x")
    assert ids(excluded) == [plain.public_id]


def test_a_nul_in_a_label_filter_is_a_400_on_the_api_and_the_pages(key_client, client, db):
    from tests.conftest import person_with_role

    assert_refused(key_client.get("/api/runs?label=team:a%00"), "label")
    client.force_login(person_with_role("nul_viewer", "viewer"))
    for url in ("/runs/?label=team:a%00", "/pipelines/?label=team:a%00"):
        response = client.get(url)
        assert response.status_code == 400, url
        assert "NUL" in response.content.decode(), url


def test_exclusions_leave_out_what_they_name(key_client, labelled):
    other = labelled["other_pipeline"].public_id
    other_gateway = labelled["other_gateway"].public_id
    cases = {
        "excludeStatus=succeeded": {"b", "c", "d"},
        "excludeStatus=succeeded,failed": {"d"},
        f"excludePipelineId={other}": {"a", "b", "d"},
        # A run without a gateway is not on the excluded one.
        f"excludeGatewayId={other_gateway}": {"a", "b", "d", "e"},
        "excludeTrigger=schedule&excludeTrigger=manual": {"a", "c"},
        "excludeLabel=team:finance": {"c", "d"},
        "excludeLabel=env:dev&excludeLabel=team:growth": {"a", "d", "e"},
        # Combined with the positive filters.
        "status=failed&excludeLabel=team:growth": {"b"},
        "label=team:finance&excludeStatus=failed&excludeTrigger=schedule": {"a"},
        f"label=team:finance&excludePipelineId={other}&excludeLabel=env:dev": {"a"},
    }
    for query, expected in cases.items():
        assert names(key_client.get(f"/api/runs?{query}"), labelled) == expected, query


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("label=team", "label"),
        ("label=Team:finance", "label"),
        ("excludeLabel=:x", "excludeLabel"),
        ("excludeStatus=nope", "excludeStatus"),
        ("excludePipelineId=pl_nope", "excludePipelineId"),
        ("excludeGatewayId=gw_nope", "excludeGatewayId"),
        ("excludeTrigger=sometimes", "excludeTrigger"),
        ("sort=name", "sort"),
    ],
)
def test_bad_filters_are_a_400_naming_the_parameter(key_client, labelled, query, field):
    assert_refused(key_client.get(f"/api/runs?{query}"), field)
    assert_refused(key_client.get(f"/api/runs/export?{query}"), field)


def test_a_forged_cursor_is_a_400(key_client, labelled):
    assert_refused(key_client.get("/api/runs?sort=-startedAt&cursor=garbage"), "cursor")


# --- sorting under the keyset cursor ---------------------------------------------------------


def sort_value(run: Run, sort: str):
    key = sort.lstrip("-")
    return {
        "createdAt": run.created_at,
        "startedAt": run.started_at,
        "durationSeconds": (
            run.finished_at - run.started_at if run.finished_at and run.started_at else None
        ),
        "rowsLoaded": run.rows_loaded,
        "bytesLoaded": run.bytes_loaded,
    }[key]


def expected_order(runs: list[Run], sort: str) -> list[str]:
    descending = sort.startswith("-")
    valued = [run for run in runs if sort_value(run, sort) is not None]
    nulls = [run for run in runs if sort_value(run, sort) is None]
    valued.sort(key=lambda run: (sort_value(run, sort), run.pk), reverse=descending)
    nulls.sort(key=lambda run: run.pk, reverse=descending)
    return [run.public_id for run in valued + nulls]


def make_sortable_runs(pipeline, count: int, *, offset: int = 0) -> list[Run]:
    """Runs with ties and NULLs in every sort key: queued ones (no start), running ones (no
    finish), and finished ones sharing durations, rows and bytes."""
    runs = []
    for index in range(offset, offset + count):
        created = START + timedelta(minutes=index // 2)  # pairs share a creation time
        kind = index % 5
        started = created + timedelta(seconds=30) if kind else None
        finished = started + timedelta(seconds=60 * (index % 3)) if kind > 1 else None
        runs.append(
            RunFactory(
                pipeline=pipeline,
                status=RunStatus.SUCCEEDED if finished else RunStatus.QUEUED,
                created_at=created,
                started_at=started,
                finished_at=finished,
                rows_loaded=(index % 4) * 100 if kind != 4 else None,
                bytes_loaded=(index % 3) * 1000 if kind != 3 else None,
            )
        )
    return runs


@pytest.mark.parametrize("sort", list(RUN_SORTS))
def test_every_sort_pages_without_repeats_or_gaps_while_runs_arrive(key_client, pipeline, sort):
    runs = make_sortable_runs(pipeline, 23)
    expected = expected_order(runs, sort)
    seen: list[str] = []
    cursor = None
    arrived = 0
    for _ in range(30):
        url = f"/api/runs?limit=4&sort={sort}" + (f"&cursor={cursor}" if cursor else "")
        response = key_client.get(url)
        seen += ids(response)
        assert response.json()["meta"]["sort"] == sort
        cursor = response.json()["meta"]["cursor"]
        if cursor is None:
            break
        # New runs arrive between pages, with values anywhere in the order.
        make_sortable_runs(pipeline, 2, offset=100 + arrived)
        arrived += 2
    else:
        raise AssertionError("paging did not end")

    assert len(seen) == len(set(seen)), "a run was repeated"
    # Every run that existed when paging began is there, in the order the sort says.
    assert [run_id for run_id in seen if run_id in set(expected)] == expected


def test_a_cursor_only_pages_the_sort_it_was_made_under(key_client, pipeline):
    make_sortable_runs(pipeline, 6)
    cursor = key_client.get("/api/runs?limit=2&sort=-rowsLoaded").json()["meta"]["cursor"]

    body = assert_refused(key_client.get(f"/api/runs?limit=2&cursor={cursor}"), "cursor")

    assert "-rowsLoaded" in body["errors"]["cursor"][0]
    assert ids(key_client.get(f"/api/runs?limit=2&sort=-rowsLoaded&cursor={cursor}"))


def test_a_sorted_page_costs_the_same_queries_deep_as_first(key_client, pipeline):
    make_sortable_runs(pipeline, 30)
    key_client.get("/api/runs?limit=1")  # the key's first use records it
    counts = []
    cursor = None
    for _ in range(5):
        url = "/api/runs?limit=5&sort=-durationSeconds" + (f"&cursor={cursor}" if cursor else "")
        with CaptureQueriesContext(connection) as captured:
            response = key_client.get(url)
        cursor = response.json()["meta"]["cursor"]
        run_sql = [q["sql"] for q in captured.captured_queries if 'FROM "runs_run"' in q["sql"]]
        assert not any("OFFSET" in sql.upper() for sql in run_sql)
        counts.append(len(captured.captured_queries))
    # A page that crosses from the finished runs to those without a duration reads both
    # segments: one more query, never more.
    assert max(counts) - min(counts) <= 1, counts


# --- totals ----------------------------------------------------------------------------------


def test_meta_total_is_exact_up_to_the_cap_then_at_least(key_client, pipeline, monkeypatch):
    make_sortable_runs(pipeline, 7)
    meta = key_client.get("/api/runs?limit=2").json()["meta"]
    assert meta["total"] == 7
    assert "totalAtLeast" not in meta
    assert key_client.get("/api/runs?limit=2&excludeStatus=queued").json()["meta"]["total"] == 3

    monkeypatch.setattr(exports, "TOTAL_CAP", 5)
    with CaptureQueriesContext(connection) as captured:
        meta = key_client.get("/api/runs?limit=2").json()["meta"]
    assert meta == {**meta, "totalAtLeast": 5}
    assert "total" not in meta
    [count_sql] = [q["sql"] for q in captured.captured_queries if "COUNT(" in q["sql"].upper()]
    assert "LIMIT 6" in count_sql


def total_and_counts(client, url: str) -> tuple[int, int]:
    """A list's ``meta.total`` and the COUNT statements it took."""
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200
    counts = [q for q in captured.captured_queries if "COUNT(" in q["sql"].upper()]
    return response.json()["meta"]["total"], len(counts)


def test_a_first_page_holding_every_match_is_its_own_total(key_client, pipeline):
    make_sortable_runs(pipeline, 7)
    # Every match on the first page: the total is the page's, with no count.
    assert total_and_counts(key_client, "/api/runs?limit=7") == (7, 0)
    assert total_and_counts(key_client, "/api/runs?limit=50&excludeStatus=queued") == (3, 0)
    assert total_and_counts(key_client, "/api/runs?status=queued&excludeStatus=queued") == (0, 0)
    # One more run than the page holds, or a later page: counted.
    assert total_and_counts(key_client, "/api/runs?limit=6") == (7, 1)
    cursor = key_client.get("/api/runs?limit=6").json()["meta"]["cursor"]
    assert total_and_counts(key_client, f"/api/runs?limit=6&cursor={cursor}") == (7, 1)


# --- export ----------------------------------------------------------------------------------


def all_pages(client, query: str) -> list[dict]:
    items, cursor = [], None
    while True:
        url = f"/api/runs?limit=3&{query}" + (f"&cursor={cursor}" if cursor else "")
        body = client.get(url).json()
        items += body["data"]
        cursor = body["meta"]["cursor"]
        if cursor is None:
            return items


@pytest.mark.parametrize("sort", ["-createdAt", "durationSeconds", "-bytesLoaded"])
def test_the_ndjson_export_is_every_page_of_the_list(key_client, pipeline, monkeypatch, sort):
    monkeypatch.setattr(exports, "EXPORT_CHUNK", 4)  # several chunks, and a segment change
    # Frozen: a running run's duration is counted to now.
    with time_machine.travel(START + timedelta(days=1), tick=False):
        export_matches_pages(key_client, pipeline, sort)


def export_matches_pages(key_client, pipeline, sort: str) -> None:
    runs = make_sortable_runs(pipeline, 15)
    Run.objects.filter(pk=runs[0].pk).update(labels={"team": "finance"})
    query = f"sort={sort}&excludeStatus=cancel_requested"

    response = key_client.get(f"/api/runs/export?format=ndjson&{query}")

    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"].startswith("application/x-ndjson")
    assert response["Content-Disposition"].startswith('attachment; filename="runs-')
    assert response["Content-Disposition"].endswith('.ndjson"')
    lines = b"".join(response.streaming_content).decode().splitlines()
    exported = [json.loads(line) for line in lines]
    pages = all_pages(key_client, query)
    fields = set(exports.CSV_COLUMNS)
    assert [item["id"] for item in exported] == [item["id"] for item in pages]
    assert exported == [{key: item[key] for key in fields} for item in pages]


def test_the_csv_export_has_a_header_and_every_matching_run(key_client, labelled):
    pipeline_name = labelled["runs"]["a"].pipeline.name
    PipelineFactory(name="=HYPERLINK(x)")  # not matched: shows nothing

    response = key_client.get("/api/runs/export?format=csv&label=team:finance&sort=createdAt")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].endswith('.csv"')
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    expected = [labelled["runs"][name] for name in ("a", "b", "e")]
    assert [row["id"] for row in rows] == [run.public_id for run in expected]
    assert rows[0]["pipelineName"] == pipeline_name
    assert json.loads(rows[0]["labels"]) == {"env": "prod", "team": "finance"}
    assert rows[0]["startedAt"] == ""


def test_csv_cells_that_a_spreadsheet_would_run_are_defused(key_client, db):
    pipeline = PipelineFactory(name="=cmd|' /C calc'!A0")
    RunFactory(pipeline=pipeline)

    body = b"".join(key_client.get("/api/runs/export").streaming_content).decode()

    assert "'=cmd" in body


def test_the_export_refuses_a_bad_format_and_needs_a_viewer(key_client, labelled, db):
    assert_refused(key_client.get("/api/runs/export?format=xlsx"), "format")
    outsider = client_with_roles("nobody")
    response = outsider.get("/api/runs/export?format=csv")
    assert response.status_code == 403
    assert APIClient().get("/api/runs/export").status_code == 401


# --- log download ----------------------------------------------------------------------------


def test_a_run_log_downloads_whole_as_text_and_ndjson(key_client, run):
    report(run, append_log={"level": "info", "message": "Connecting", "nodeId": "src"})
    report(run, append_log={"level": "error", "message": "line one\nline two password=hunter2"})

    text = key_client.get(f"/api/runs/{run.public_id}/logs?format=text")
    ndjson = key_client.get(f"/api/runs/{run.public_id}/logs?format=ndjson")

    assert text.status_code == 200
    assert text["Content-Disposition"] == f'attachment; filename="{run.public_id}-log.txt"'
    lines = b"".join(text.streaming_content).decode().splitlines()
    assert len(lines) == 2
    assert lines[0].endswith("INFO [src] Connecting")
    assert "ERROR line one\\nline two" in lines[1]
    assert "hunter2" not in lines[1]
    entries = [json.loads(line) for line in b"".join(ndjson.streaming_content).splitlines()]
    assert [entry["message"] for entry in entries] == list(
        LogLine.objects.filter(run=run).order_by("seq").values_list("message", flat=True)
    )
    assert entries[0] == {**entries[0], "level": "info", "nodeId": "src"}


def test_a_log_download_refuses_a_bad_format(key_client, run):
    assert_refused(key_client.get(f"/api/runs/{run.public_id}/logs?format=pdf"), "format")
    assert key_client.get("/api/runs/run_nope/logs?format=text").status_code == 404


# --- PostgreSQL plans -----------------------------------------------------------------------


@pytest.mark.skipif(connection.vendor != "postgresql", reason="EXPLAIN output is PostgreSQL's")
def test_label_filter_and_sorts_are_index_backed_on_postgresql(key_client, pipeline):
    start = START - timedelta(days=30)
    Run.objects.bulk_create(
        (
            Run(
                pipeline=pipeline,
                status=RunStatus.SUCCEEDED,
                created_at=start + timedelta(seconds=index),
                started_at=start + timedelta(seconds=index),
                finished_at=start + timedelta(seconds=index + index % 977),
                rows_loaded=index * 7 % 10007,
                bytes_loaded=index * 13 % 10009,
                labels={"team": f"t{index % 50}", "env": "prod"}
                | ({"audit": "yes"} if index % 2000 == 0 else {}),
            )
            for index in range(10000)
        ),
        batch_size=2000,
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE runs_run")
    cases = {
        "label=audit:yes": "run_labels_gin",
        "sort=-startedAt": "run_started_sort_idx",
        "sort=-durationSeconds": "run_duration_desc_idx",
        "sort=durationSeconds": "run_duration_asc_idx",
        "sort=-rowsLoaded": "run_rows_sort_idx",
        "sort=-bytesLoaded": "run_bytes_sort_idx",
    }
    for query, index_name in cases.items():
        with CaptureQueriesContext(connection) as captured:
            response = key_client.get(f"/api/runs?limit=50&{query}")
        assert response.status_code == 200
        cursor_value = response.json()["meta"]["cursor"]
        if cursor_value:  # the second page, started at its cursor
            with CaptureQueriesContext(connection) as captured:
                key_client.get(f"/api/runs?limit=50&{query}&cursor={cursor_value}")
        [page_sql] = [
            q["sql"]
            for q in captured.captured_queries
            if 'FROM "runs_run"' in q["sql"] and "COUNT(" not in q["sql"].upper()
        ]
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN {page_sql}")
            plan = "\n".join(row[0] for row in cursor.fetchall())
        assert index_name in plan, (query, plan)
        assert "Seq Scan on runs_run" not in plan, (query, plan)
