"""GET /api/logs: search across every kept log, checked against a plain scan of the database."""

import random
from datetime import timedelta

import pytest
from django.db import connection
from django.http import QueryDict
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from common.actors import Actor
from runs import services
from runs.filters import RunFilter
from runs.log_search import LogPosition, encode_log_cursor
from runs.models import LogLine, Run, RunStatus
from tests.factories import GatewayFactory, PipelineFactory, RunFactory

pytestmark = pytest.mark.django_db

URL = "/api/logs"
WORDS = ["extract", "load", "warehouse", "timeout", "retrying", "accounts", "rows", "Snowflake"]


def scan(*, text: str, runs=None, cap: int = 500) -> list[tuple[str, int]]:
    """What the search must answer: a plain read of every line, filtered and sorted in Python."""
    runs = list(runs if runs is not None else Run.objects.all())
    by_pk = {run.pk: run for run in runs}
    hits = [
        line
        for line in LogLine.objects.filter(run__in=runs)
        if text.lower() in line.message.lower() and line.seq > by_pk[line.run_id].log_seq - cap
    ]
    hits.sort(key=lambda line: (by_pk[line.run_id].created_at, line.run_id, line.seq), reverse=True)
    return [(by_pk[line.run_id].public_id, line.seq) for line in hits]


def walk(client, query: str, *, limit: int) -> list[tuple[str, int]]:
    seen: list[tuple[str, int]] = []
    cursor = None
    for _ in range(500):
        params = f"{query}&limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        response = client.get(f"{URL}?{params}")
        assert response.status_code == 200, response.content
        body = response.json()
        seen += [(hit["runId"], hit["seq"]) for hit in body["data"]]
        cursor = body["meta"]["cursor"]
        if cursor is None:
            return seen
    raise AssertionError("paging did not end")


def assert_refused(response, param: str) -> dict:
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "invalid" and param in body["errors"], body
    return body


@pytest.fixture
def corpus(db):
    """Forty runs of two pipelines over ten days, with random messages; a few words are rare."""
    rng = random.Random(16)
    gateways = [GatewayFactory(name="edge-a"), GatewayFactory(name="edge-b")]
    pipelines = [
        PipelineFactory(name="crm", default_gateway=gateways[0]),
        PipelineFactory(name="billing", default_gateway=gateways[1]),
    ]
    now = timezone.now()
    statuses = [RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.RUNNING]
    for index in range(40):
        run = RunFactory(
            pipeline=pipelines[index % 2],
            status=statuses[index % 3],
            created_at=now - timedelta(hours=6 * index),
        )
        entries = []
        for line in range(rng.randint(5, 30)):
            words = rng.sample(WORDS, 3)
            if rng.random() < 0.05:
                words.append("zebrafish")
            entries.append(
                {
                    "level": rng.choice(["info", "warn", "error"]),
                    "message": f"{' '.join(words)} #{line}",
                    "nodeId": rng.choice(["n_source", "n_sink", ""]),
                }
            )
        services.run_update(actor=Actor.system(), run=run, changes={"log_entries": entries})
    return {"pipelines": pipelines, "gateways": gateways}


def test_hits_match_a_plain_scan_newest_run_first(key_client, corpus):
    response = key_client.get(f"{URL}?q=zebrafish&limit=200")
    assert response.status_code == 200
    got = [(hit["runId"], hit["seq"]) for hit in response.json()["data"]]
    expected = scan(text="zebrafish")
    assert len(expected) > 5
    assert got == expected


def test_every_hit_carries_its_run_node_level_time_and_a_line_link(key_client, pipeline):
    run = RunFactory(pipeline=pipeline, status=RunStatus.FAILED)
    services.run_update(
        actor=Actor.system(), run=run, changes={"append_log": {"level": "info", "message": "start"}}
    )
    services.run_update(
        actor=Actor.system(),
        run=run,
        changes={"append_log": {"level": "error", "message": "Disk FULL on /data", "nodeId": "n1"}},
    )
    [hit] = key_client.get(f"{URL}?q=disk full").json()["data"]
    line = LogLine.objects.get(run=run, seq=2)
    assert hit == {
        "runId": run.public_id,
        "seq": 2,
        "ts": line.at.isoformat().replace("+00:00", "Z"),
        "level": "error",
        "nodeId": "n1",
        "message": "Disk FULL on /data",
        "runStatus": "failed",
        "runCreatedAt": run.created_at.isoformat().replace("+00:00", "Z"),
        "pipelineId": pipeline.public_id,
        "pipelineName": pipeline.name,
        "gatewayId": pipeline.default_gateway.public_id,
        "url": f"/runs/{run.public_id}/#L2",
    }


@pytest.mark.parametrize(
    "query",
    ["status=failed", "status=failed,running", "window=7d", "trigger=api"],
)
def test_run_list_filters_narrow_the_search_like_a_scan(key_client, corpus, query):
    runs = RunFilter(QueryDict(query), queryset=Run.objects.all()).qs
    got = [
        (h["runId"], h["seq"])
        for h in key_client.get(f"{URL}?q=rows&{query}&limit=200").json()["data"]
    ]
    assert got == scan(text="rows", runs=runs)[:200]
    assert got


def test_pipeline_gateway_and_date_range_filters(key_client, corpus):
    crm = corpus["pipelines"][0]
    got = walk(key_client, f"q=timeout&pipelineId={crm.public_id}", limit=7)
    assert got == scan(text="timeout", runs=Run.objects.filter(pipeline=crm))
    edge_b = corpus["gateways"][1]
    got = walk(key_client, f"q=timeout&gatewayId={edge_b.public_id}", limit=50)
    assert got == scan(text="timeout", runs=Run.objects.filter(gateway=edge_b))
    today = timezone.now().date()
    window = f"{today - timedelta(days=2)}..{today}"
    got = walk(key_client, f"q=timeout&dateRange={window}", limit=50)
    runs = Run.objects.filter(created_at__date__gte=today - timedelta(days=2))
    assert got == scan(text="timeout", runs=runs)


def test_paging_gives_every_hit_once_also_while_lines_arrive(key_client, corpus):
    expected = scan(text="warehouse")
    seen: list[tuple[str, int]] = []
    cursor = None
    newest = Run.objects.order_by("-created_at").first()
    for page in range(100):
        params = "q=warehouse&limit=9" + (f"&cursor={cursor}" if cursor else "")
        body = key_client.get(f"{URL}?{params}").json()
        seen += [(hit["runId"], hit["seq"]) for hit in body["data"]]
        cursor = body["meta"]["cursor"]
        if cursor is None:
            break
        # New lines in the newest run land before the cursor's position: never on a later page.
        services.run_update(
            actor=Actor.system(),
            run=newest,
            changes={"append_log": {"level": "info", "message": f"warehouse {page}"}},
        )
    assert seen == expected
    assert len(seen) == len(set(seen))


def test_trimmed_lines_are_not_found(key_client, pipeline, settings):
    settings.RUN_LOG_CAP = 5
    run = RunFactory(pipeline=pipeline)
    for index in range(8):
        services.run_update(
            actor=Actor.system(),
            run=run,
            changes={"append_log": {"level": "info", "message": f"needle {index}"}},
        )
    assert LogLine.objects.filter(run=run).count() == 8  # trimming has not caught up
    hits = key_client.get(f"{URL}?q=needle").json()["data"]
    assert [hit["seq"] for hit in hits] == [8, 7, 6, 5, 4]


def test_like_wildcards_are_literal_and_case_is_ignored(key_client, pipeline):
    run = RunFactory(pipeline=pipeline)
    for message in ["progress 100% done", "progress 1000 rows", "a_b_c", "aXbXc", "ÉTÉ Report"]:
        services.run_update(
            actor=Actor.system(),
            run=run,
            changes={"append_log": {"level": "info", "message": message}},
        )

    def found(text: str) -> list[str]:
        return [hit["message"] for hit in key_client.get(URL, {"q": text}).json()["data"]]

    assert found("100%") == ["progress 100% done"]
    assert found("a_b_c") == ["a_b_c"]
    assert found("PROGRESS") == ["progress 1000 rows", "progress 100% done"]
    assert found("report") == ["ÉTÉ Report"]


@pytest.mark.parametrize(
    ("query", "param"),
    [
        ("", "q"),
        ("q=", "q"),
        ("q=ab", "q"),
        ("q=a+b+c", "q"),
        ("q=%25%25%25", "q"),
        ("q=" + "x" * 201, "q"),
        ("q=rows&status=exploded", "status"),
        ("q=rows&pipelineId=pl_nope", "pipelineId"),
        ("q=rows&dateRange=2025-13-01..", "dateRange"),
        ("q=rows&from=9999-12-31T23:00:00-05:00", "from"),
        ("q=rows&to=9999-12-31", "to"),
        ("q=rows&limit=0", "limit"),
        ("q=rows&limit=201", "limit"),
        ("q=rows&cursor=forged", "cursor"),
        ("q=rows&window=1y", "window"),
        ("q=ro%00ws", "q"),
    ],
)
def test_bad_input_is_a_400_naming_the_parameter(key_client, corpus, query, param):
    before = LogLine.objects.count()
    assert_refused(key_client.get(f"{URL}?{query}"), param)
    assert LogLine.objects.count() == before


def test_a_short_text_says_why_it_is_refused(key_client, corpus):
    body = assert_refused(key_client.get(f"{URL}?q=ab"), "q")
    assert "at least 3" in body["errors"]["q"][0] and "trigram" in body["errors"]["q"][0]


def test_every_bad_parameter_is_named_at_once(key_client, corpus):
    body = assert_refused(key_client.get(f"{URL}?q=ab&status=nope&limit=x"), "q")
    assert {"q", "status", "limit"} <= set(body["errors"])


def test_no_credentials_is_401_and_a_gateway_token_too(client, agent_client, corpus):
    assert client.get(f"{URL}?q=rows").status_code == 401
    assert agent_client.get(f"{URL}?q=rows").status_code == 401


def test_a_signed_in_session_may_search(client, user, corpus, key_client):
    client.force_login(user)
    by_session = client.get(f"{URL}?q=rows")
    assert by_session.status_code == 200
    assert by_session.json()["data"]  # the corpus has such lines
    assert by_session.json() == key_client.get(f"{URL}?q=rows").json()


def test_one_query_per_page_whatever_the_hits(key_client, corpus, django_assert_max_num_queries):
    key_client.get(f"{URL}?q=rows")  # the key's first use is recorded once
    with django_assert_max_num_queries(4):  # 2 of them: the key's viewer permission
        key_client.get(f"{URL}?q=rows&limit=200")
    with CaptureQueriesContext(connection) as few:
        key_client.get(f"{URL}?q=zebrafish&limit=2")
    with CaptureQueriesContext(connection) as many:
        key_client.get(f"{URL}?q=rows&limit=200")
    search = [q for q in many.captured_queries if "runs_logline" in q["sql"]]
    assert len(search) == 1
    assert "OFFSET" not in search[0]["sql"].upper() and "COUNT(" not in search[0]["sql"].upper()
    assert len(many) == len(few)


def test_a_cursor_is_a_position_not_an_offset(key_client, corpus):
    newest = Run.objects.order_by("-created_at").first()
    cursor = encode_log_cursor(LogPosition(newest.created_at, newest.pk, 3))
    hits = key_client.get(f"{URL}?q=rows&limit=200&cursor={cursor}").json()["data"]
    expected = [
        hit for hit in scan(text="rows") if not (hit[0] == newest.public_id and hit[1] >= 3)
    ]
    assert [(h["runId"], h["seq"]) for h in hits] == expected[:200]


def test_the_search_is_in_the_openapi_schema(key_client):
    schema = key_client.get("/api/schema/?format=json").json()
    operation = schema["paths"]["/api/logs"]["get"]
    names = {parameter["name"] for parameter in operation["parameters"]}
    assert {"q", "status", "pipelineId", "gatewayId", "dateRange", "cursor", "limit"} <= names
    assert "400" in operation["responses"]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the trigram index is PostgreSQL's")
def test_the_trigram_index_serves_the_search_on_postgresql(key_client, corpus):
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'logline_message_trgm'")
        [(definition,)] = cursor.fetchall()
    assert "gin" in definition and "gin_trgm_ops" in definition
    with CaptureQueriesContext(connection) as captured:
        key_client.get(f"{URL}?q=zebrafish")
    [sql] = [q["sql"] for q in captured.captured_queries if "runs_logline" in q["sql"]]
    assert '"runs_logline"."message" ILIKE' in sql, sql
    with connection.cursor() as cursor:
        # On a table this small the planner prefers to walk a run's lines by (run, seq); what
        # matters is that the predicate the search uses is one the trigram index serves. The
        # plans at scale are in bench/RESULTS.md (bench.log_search).
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_indexscan = off")
        cursor.execute("EXPLAIN SELECT 1 FROM runs_logline WHERE message ILIKE %s", ["%zebrafish%"])
        plan = "\n".join(row[0] for row in cursor.fetchall())
        # The table is partitioned (runs.partitions): each partition has its own copy of the
        # index, attached to ``logline_message_trgm``; the plan names the copies.
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'logline_message_trgm'::regclass"
        )
        copies = [row[0] for row in cursor.fetchall()]
    assert copies and any(name in plan for name in copies), plan
