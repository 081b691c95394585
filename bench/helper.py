"""The in-process half of the benchmark: runs inside Django against the database under test.

``python -m bench.helper <command> [json]`` prints one JSON document on its last line. The
driver (``bench.run``) holds no Django state of its own, so one process per database and command
keeps the two databases apart.

Commands:
- ``prepare``: a bench superuser with a session and an API key, one gateway (and token) per
  load client, a few running runs, a large finished run for run detail, and the ids and cursors
  the measurements need.
- ``ingest_prepare``: the pool of running runs the ingest measurement appends to.
- ``queries``: SQL queries per request for a list of requests, through Django's test client with
  ``CaptureQueriesContext``, plus EXPLAIN ANALYZE of the slowest query of each.
- ``strip``: server time of the dashboard strip's aggregate alone (p50 of N), in-process.
- ``finish_cost``: server time of the PATCH that finishes a run, without and with the baseline
  index.
- ``bulk_preview``: server time of the bulk dry-run preview (``runs.bulk.bulk_preview``, and the
  whole ``POST /api/runs/bulk`` with ``dryRun``) over the newest ``matching`` runs (p50 of N),
  in-process, with the plan of its count.
- ``cost_prepare``: what ``bench.cost`` measures: per client a gateway with its token and its
  runs (a few lines; 500 lines and 2000 samples), a viewer's API key each, a floor target run.
- ``cleanup``: delete the ingest runs so that dashboards and lists see only seeded history.
"""

import json
import os
import statistics
import sys
import time
from datetime import timedelta
from typing import Any

import django

from common.actors import Actor, Source

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import (  # noqa: E402
    BACKEND_SESSION_KEY,
    HASH_SESSION_KEY,
    SESSION_KEY,
    get_user_model,
)
from django.contrib.sessions.backends.db import SessionStore  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.utils import timezone  # noqa: E402

from common.api.pagination import Position, encode_cursor  # noqa: E402
from common.ids import new_public_id  # noqa: E402
from gateways.models import Gateway, GatewayToken  # noqa: E402
from gateways.services import api_key_issue, gateway_token_issue  # noqa: E402
from pipelines.models import Pipeline  # noqa: E402
from runs import rollup  # noqa: E402
from runs.models import LogLine, Run, RunNode, RunStatus, TelemetrySample  # noqa: E402
from runs.views import live_poll_url  # noqa: E402

BENCH_PIPELINE = "bench_ingest"
BENCH_PIPELINES = 200
BENCH_USER = "bench"
BENCH_GATEWAY_PREFIX = "bench-gw-"
DETAIL_RUN_MARK = {"bench": "detail"}
INGEST = {"bench": "ingest"}
LIVE = {"bench": "live"}


def emit(payload: dict[str, Any]) -> None:
    sys.stdout.write("\n" + json.dumps(payload, default=str) + "\n")
    sys.stdout.flush()


def bench_pipeline() -> Pipeline:
    pipeline, _ = Pipeline.objects.get_or_create(
        name=BENCH_PIPELINE, defaults={"description": "Runs the benchmark appends to."}
    )
    return pipeline


def delete_runs_sql(where: str, params: list[Any]) -> int:
    """Delete runs and their rows with set-based SQL (the ORM collector walks them in Python)."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SELECT id FROM runs_run WHERE {where}", params)  # noqa: S608
        ids = [row[0] for row in cursor.fetchall()]
        if not ids:
            return 0
        for table in ("runs_logline", "runs_telemetrysample", "runs_runnode", "runs_patchreceipt"):
            cursor.execute(f"DELETE FROM {table} WHERE run_id = ANY(%s)", [ids])  # noqa: S608
        cursor.execute("UPDATE runs_run SET rerun_of_id = NULL WHERE rerun_of_id = ANY(%s)", [ids])
        # Tables of other apps that point at runs (webhook events, ...), whatever is installed.
        cursor.execute(
            """
            SELECT cl.relname, att.attname FROM pg_constraint con
            JOIN pg_class cl ON cl.oid = con.conrelid
            JOIN pg_attribute att ON att.attrelid = con.conrelid AND att.attnum = con.conkey[1]
            WHERE con.contype = 'f' AND con.confrelid = 'runs_run'::regclass
              AND cl.relname NOT IN ('runs_logline', 'runs_telemetrysample', 'runs_runnode',
                                     'runs_patchreceipt', 'runs_run')
            """
        )
        for table, column in cursor.fetchall():
            cursor.execute(f'DELETE FROM "{table}" WHERE "{column}" = ANY(%s)', [ids])  # noqa: S608
        cursor.execute("DELETE FROM runs_run WHERE id = ANY(%s)", [ids])
        return len(ids)


def cleanup_ingest_runs() -> int:
    pipeline = Pipeline.objects.filter(name=BENCH_PIPELINE).first()
    if pipeline is None:
        return 0
    removed = delete_runs_sql(
        "pipeline_id = %s AND trigger @> %s::jsonb", [pipeline.pk, json.dumps(INGEST)]
    )
    vacuum()
    return removed


def build_pipeline_days() -> int:
    """What the worker's periodic ``pipeline_days_build`` keeps done: every closed day summed
    (``runs.rollup``), so that the pages are measured as they run in production."""
    written = 0
    for _ in range(settings.PIPELINE_DAYS_KEPT):
        step = rollup.build(now=timezone.now(), max_days=31)
        if not step:
            break
        written += step
    return written


def vacuum() -> None:
    """Clear the dead rows the ingest runs leave behind, and refresh the statistics.

    Without it the indexes keep entries for thousands of deleted "running" runs, which every
    later "running now" count and status filter would have to visit and discard.
    """
    with connection.cursor() as cursor:
        for table in ("runs_run", "runs_logline", "runs_telemetrysample", "runs_runnode"):
            cursor.execute(f"VACUUM ANALYZE {table}")


def seeded_counts() -> dict[str, Any]:
    """Runs of seeded history (everything but the bench's own) and where that history ends."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), max(r.created_at) FROM runs_run r "
            "JOIN pipelines_pipeline p ON p.id = r.pipeline_id WHERE p.name <> %s",
            [BENCH_PIPELINE],
        )
        count, newest = cursor.fetchone()
    return {"runs": count, "newest": newest}


def session_cookie(user) -> str:
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.set_expiry(24 * 3600)
    session.create()
    return session.session_key


def bench_user():
    users = get_user_model()
    user = users.objects.filter(username=BENCH_USER).first()
    if user is None:
        user = users.objects.create_superuser(BENCH_USER, "bench@example.com", None)
    return user


def make_runs(
    *,
    pipeline: Pipeline,
    gateway: Gateway | None,
    count: int,
    lines: int,
    samples: int,
    mark: dict[str, str] = INGEST,
) -> list[Run]:
    """Running runs that already hold ``lines`` log lines and ``samples`` telemetry samples."""
    now = timezone.now()
    runs = Run.objects.bulk_create(
        Run(
            pipeline=pipeline,
            gateway=gateway,
            status=RunStatus.RUNNING,
            trigger_type="api",
            trigger=mark,
            created_at=now,
            updated_at=now,
            started_at=now,
            last_report_at=now,
            log_seq=lines,
            sample_seq=samples,
            telemetry_summary={"rowsLoaded": 0, "progress": 0},
        )
        for _ in range(count)
    )
    fill_rows(runs, lines=lines, samples=samples, at=now)
    return runs


def fill_rows(runs: list[Run], *, lines: int, samples: int, at) -> None:
    text = "Read batch of 50000 rows from source table accounts (partition {n})"
    LogLine.objects.bulk_create(
        (
            LogLine(
                run=run,
                seq=seq,
                at=at,
                level="info",
                node_id="n_source",
                message=text.format(n=seq),
            )
            for run in runs
            for seq in range(1, lines + 1)
        ),
        batch_size=5000,
    )
    TelemetrySample.objects.bulk_create(
        (
            TelemetrySample(
                run=run,
                seq=seq,
                at=at,
                values={"rowsLoaded": seq * 1000, "bytesLoaded": seq * 250_000, "progress": 1},
            )
            for run in runs
            for seq in range(1, samples + 1)
        ),
        batch_size=5000,
    )


def detail_run(pipeline: Pipeline, gateway: Gateway) -> Run:
    """A finished run with a full log, a full series and nodes, older than all seeded history
    (so it never enters a dashboard window), reused across invocations."""
    run = Run.objects.filter(pipeline=pipeline, trigger__bench="detail").first()
    if run is not None:
        return run
    oldest = Run.objects.order_by("created_at").values_list("created_at", flat=True).first()
    created = (oldest or timezone.now()) - timedelta(days=1)
    run = Run.objects.create(
        public_id=new_public_id("run", at_ms=int(created.timestamp() * 1000)),
        pipeline=pipeline,
        gateway=gateway,
        status=RunStatus.SUCCEEDED,
        trigger_type="api",
        trigger=DETAIL_RUN_MARK,
        created_at=created,
        updated_at=created + timedelta(hours=1),
        started_at=created,
        finished_at=created + timedelta(hours=1),
        last_report_at=created + timedelta(hours=1),
        log_seq=settings.RUN_LOG_CAP,
        sample_seq=settings.RUN_SAMPLE_CAP,
        rows_loaded=2_000_000,
        bytes_loaded=500_000_000,
        progress=100.0,
        telemetry_summary={"rowsLoaded": 2_000_000, "bytesLoaded": 500_000_000, "progress": 100},
    )
    fill_rows([run], lines=settings.RUN_LOG_CAP, samples=settings.RUN_SAMPLE_CAP, at=created)
    RunNode.objects.bulk_create(
        RunNode(run=run, node_id=f"n_{index}", type="source.postgres", status="succeeded")
        for index in range(8)
    )
    return run


def cmd_prepare(spec: dict[str, Any]) -> dict[str, Any]:
    """Everything the page measurements need; the ingest pool comes later (``ingest_prepare``)
    so that pages are measured on seeded history plus a few running runs only."""
    removed = cleanup_ingest_runs()
    pipeline = bench_pipeline()
    delete_runs_sql("pipeline_id = %s AND trigger @> %s::jsonb", [pipeline.pk, json.dumps(LIVE)])
    counts = seeded_counts()
    user = bench_user()
    GatewayToken.objects.filter(gateway__name__startswith=BENCH_GATEWAY_PREFIX).delete()
    tokens = []
    for index in range(spec["clients"]):
        gateway, _ = Gateway.objects.get_or_create(name=f"{BENCH_GATEWAY_PREFIX}{index}")
        _, raw = gateway_token_issue(actor=Actor.system(), gateway=gateway, name="bench")
        tokens.append(raw)
    gateway = Gateway.objects.get(name=f"{BENCH_GATEWAY_PREFIX}0")
    pipelines = ensure_bench_pipelines(BENCH_PIPELINES, gateway)
    big = detail_run(pipeline, gateway)
    live = make_runs(pipeline=pipeline, gateway=gateway, count=4, lines=30, samples=40, mark=LIVE)
    seeded = Run.objects.exclude(pipeline=pipeline)
    recent = seeded.order_by("-created_at", "-id").first()
    # "Deep in history": the run 90% of the way back, reached the way a reader would, by a cursor.
    deep_offset = int(counts["runs"] * 0.9)
    deep = seeded.order_by("-created_at", "-id").values("created_at", "pk")[deep_offset]
    deep_cursor = encode_cursor(Position(deep["created_at"], deep["pk"], "older"))
    # A seeded pipeline: the padding's empty ones (bench_pl_NNN) sort first by name.
    filter_pipeline = (
        Pipeline.objects.exclude(name__startswith="bench_")
        .order_by("name")
        .values("public_id", "name")
    ).first()
    _, api_key = api_key_issue(actor=Actor.system(), user=user, name="bench")
    pipeline_days = build_pipeline_days()
    vacuum()
    return {
        "pipeline_days_built": pipeline_days,
        "removed_ingest_runs": removed,
        "pipelines": pipelines,
        "seeded_runs": counts["runs"],
        "history_newest": counts["newest"],
        "session_cookie": f"{settings.SESSION_COOKIE_NAME}={session_cookie(user)}",
        "api_key": api_key,
        "tokens": tokens,
        "recent_run": recent.public_id if recent else None,
        "live_runs": [run.public_id for run in live],
        "live_poll_url": live_poll_url(),
        "live_run_log_seq": live[0].log_seq,
        "big_run": big.public_id,
        "deep_cursor": deep_cursor,
        "deep_created_at": deep["created_at"],
        "filter_pipeline": filter_pipeline,
        "now": timezone.now(),
    }


def cmd_ingest_prepare(spec: dict[str, Any]) -> dict[str, Any]:
    """Per client (its own gateway): a pool of runs holding 5 lines and 10 samples, and a few
    runs at the caps (500 lines; 2000 samples)."""
    pipeline = bench_pipeline()
    full_runs = spec.get("full_runs", 2)
    ingest = []
    for index in range(spec["clients"]):
        gateway = Gateway.objects.get(name=f"{BENCH_GATEWAY_PREFIX}{index}")

        def ids(count: int, lines: int, samples: int, gateway=gateway) -> list[str]:
            runs = make_runs(
                pipeline=pipeline, gateway=gateway, count=count, lines=lines, samples=samples
            )
            return [run.public_id for run in runs]

        ingest.append(
            {
                "empty": ids(spec["pool"], 5, 10),
                "full_log": ids(full_runs, settings.RUN_LOG_CAP, 10),
                "full_samples": ids(full_runs, 5, settings.RUN_SAMPLE_CAP),
            }
        )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE runs_run")
    return {"ingest": ingest}


COST_GATEWAY_PREFIX = "bench-cost-gw-"
COST_VIEWER = "bench-viewer"


def cmd_cost_prepare(spec: dict[str, Any]) -> dict[str, Any]:
    """Per client (its own gateway and token, so no client shares a rate-limit bucket): a run
    holding 5 lines and 10 samples, one holding 500 lines and 2000 samples (the caps), and runs
    for the appends. The list is read with a *viewer's* key (not a superuser's, whose permission
    check costs nothing), and the floor updates a run of its own per client."""
    from django.contrib.auth.models import Group

    from common.roles import Role

    removed = cleanup_ingest_runs()
    pipeline = bench_pipeline()
    users = get_user_model()
    viewer, _ = users.objects.get_or_create(username=COST_VIEWER)
    viewer.groups.set([Group.objects.get(name=Role.VIEWER)])
    GatewayToken.objects.filter(gateway__name__startswith=COST_GATEWAY_PREFIX).delete()
    clients = []
    for index in range(spec["clients"]):
        gateway, _ = Gateway.objects.get_or_create(name=f"{COST_GATEWAY_PREFIX}{index}")
        _, raw = gateway_token_issue(actor=Actor.system(), gateway=gateway, name="bench")

        def one(lines: int, samples: int, gateway=gateway) -> str:
            [run] = make_runs(
                pipeline=pipeline, gateway=gateway, count=1, lines=lines, samples=samples
            )
            return run.public_id

        _, api_key = api_key_issue(actor=Actor.system(), user=viewer, name="bench")
        clients.append(
            {
                "token": raw,
                "api_key": api_key,
                "append": one(5, 10),
                "batch": one(5, 10),
                "small": one(5, 10),
                "big": one(settings.RUN_LOG_CAP, settings.RUN_SAMPLE_CAP),
                # The floor's row, one per client like the appends' runs: one shared row would
                # queue every UPDATE behind the one before it and its commit's flush.
                "floor": make_runs(pipeline=pipeline, gateway=None, count=1, lines=0, samples=0)[
                    0
                ].public_id,
            }
        )
    vacuum()
    return {"removed_ingest_runs": removed, "clients": clients}


def explain(sql: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
        return "\n".join(row[0] for row in cursor.fetchall())


def cmd_queries(spec: dict[str, Any]) -> dict[str, Any]:
    client = Client()
    client.cookies[settings.SESSION_COOKIE_NAME] = spec["session_cookie"].split("=", 1)[1]
    results = {}
    for item in spec["requests"]:
        headers = {
            f"HTTP_{name.upper().replace('-', '_')}": value
            for name, value in item.get("headers", {}).items()
        }
        method = getattr(client, item.get("method", "GET").lower())
        kwargs: dict[str, Any] = dict(headers)
        if item.get("body") is not None:
            kwargs.update(data=json.dumps(item["body"]), content_type="application/json")
        # The steady state: the first request may do one-off work (a credential's first
        # last-used write, a session touch) that the next identical request does not.
        method(item["path"], **kwargs)
        with CaptureQueriesContext(connection) as captured:
            response = method(item["path"], **kwargs)
        slowest = max(captured.captured_queries, key=lambda q: float(q["time"]), default=None)
        plan = None
        if (
            spec.get("explain")
            and slowest
            and slowest["sql"].lstrip().upper().startswith("SELECT")
            and "FOR UPDATE" not in slowest["sql"].upper()
        ):
            plan = explain(slowest["sql"])
        results[item["name"]] = {
            "status": response.status_code,
            "queries": len(captured.captured_queries),
            "sql": [q["sql"][:300] for q in captured.captured_queries],
            "slowest_ms": round(float(slowest["time"]) * 1000, 2) if slowest else None,
            "slowest_sql": slowest["sql"] if slowest else None,
            "slowest_plan": plan,
        }
    return {"results": results}


def cmd_strip(spec: dict[str, Any]) -> dict[str, Any]:
    """Time the dashboard strip's aggregate through the selector the Runs view calls (uncached)."""
    from django.http import QueryDict

    from runs import dashboard, selectors
    from runs.filters import RunFilter

    results = {}
    for name, query in spec["variants"].items():
        params = QueryDict(query)
        filterset = RunFilter(params, queryset=selectors.run_queryset())
        if not filterset.is_valid():
            results[name] = {"error": str(filterset.errors)}
            continue
        times = []
        for attempt in range(spec["warmup"] + spec["iterations"]):
            began = time.perf_counter()
            with CaptureQueriesContext(connection) as captured:
                dashboard.runs_board(filterset, cached=False)
            if attempt >= spec["warmup"]:
                times.append((time.perf_counter() - began) * 1000)
        results[name] = {
            "p50_ms": round(statistics.median(times), 2),
            "times_ms": [round(t, 3) for t in times],
            "queries": len(captured.captured_queries),
            "sql": [q["sql"] for q in captured.captured_queries],
        }
    return {"results": results}


def ensure_bench_pipelines(total: int, gateway: Gateway) -> int:
    """Pad the seeded pipelines with empty ones up to ``total`` (the pipelines list's target)."""
    missing = total - Pipeline.objects.count()
    if missing > 0:
        Pipeline.objects.bulk_create(
            [
                Pipeline(name=f"bench_pl_{index:03d}", default_gateway=gateway)
                for index in range(missing)
            ],
            ignore_conflicts=True,
        )
    return Pipeline.objects.count()


def cmd_finish_cost(spec: dict[str, Any]) -> dict[str, Any]:
    """In-process server time of the PATCH that makes a running run succeeded, in alternating
    rounds without the baseline index (as before it existed) and with it (now). Baselines are
    computed on read, so the index is all the finishing PATCH pays for them."""
    pipeline = bench_pipeline()
    gateway = Gateway.objects.get(name=f"{BENCH_GATEWAY_PREFIX}0")
    _, token = gateway_token_issue(actor=Actor.system(), gateway=gateway, name="bench-finish")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_PREFER="return=minimal")
    times: dict[str, list[float]] = {"before": [], "after": []}
    create_index = (
        'CREATE INDEX IF NOT EXISTS "run_baseline_idx" ON "runs_run" '
        '("pipeline_id", "created_at", "id") WHERE "status" = \'succeeded\''
    )
    try:
        for _ in range(spec.get("rounds", 4)):
            for phase in ("before", "after"):
                with connection.cursor() as cursor:
                    cursor.execute(
                        'DROP INDEX IF EXISTS "run_baseline_idx"'
                        if phase == "before"
                        else create_index
                    )
                runs = make_runs(
                    pipeline=pipeline,
                    gateway=gateway,
                    count=spec.get("runs", 40),
                    lines=5,
                    samples=10,
                    mark=INGEST,
                )
                for run in runs:
                    began = time.perf_counter()
                    response = client.patch(
                        f"/api/agent/runs/{run.public_id}",
                        data=json.dumps({"status": "succeeded"}),
                        content_type="application/json",
                    )
                    times[phase].append((time.perf_counter() - began) * 1000)
                    assert response.status_code in (200, 204), response.content
    finally:
        with connection.cursor() as cursor:
            cursor.execute(create_index)
        cleanup_ingest_runs()
    return {
        "before_p50_ms": round(statistics.median(times["before"]), 2),
        "after_p50_ms": round(statistics.median(times["after"]), 2),
        "patches": len(times["after"]),
    }


def cmd_bulk_preview(spec: dict[str, Any]) -> dict[str, Any]:
    """The dry-run preview over the newest ``matching`` runs (a ``from=`` filter at the
    created_at of the matching-th newest run), for cancel and for re-run: the service alone and
    the whole API request. Nothing is written."""
    from runs.bulk import Selection, bulk_preview

    matching = spec.get("matching", 100_000)
    iterations = spec.get("iterations", 10)
    edge = (
        Run.objects.order_by("-created_at", "-id").values_list("created_at", flat=True)[
            matching - 1 : matching
        ]
    ).first()
    if edge is None:
        return {"skipped": f"fewer than {matching} runs"}
    since = edge.isoformat()
    selection = Selection(filter={"from": [since]})
    user = bench_user()
    actor = Actor.of_user(user, source=Source.API)
    client = Client()
    client.force_login(user)
    results: dict[str, Any] = {"matching_filter": {"from": since}}
    for action in ("cancel", "rerun"):
        bulk_preview(actor=actor, action=action, selection=selection)  # warm
        service, request = [], []
        for _ in range(iterations):
            began = time.perf_counter()
            preview = bulk_preview(actor=actor, action=action, selection=selection)
            service.append((time.perf_counter() - began) * 1000)
            began = time.perf_counter()
            response = client.post(
                "/api/runs/bulk",
                data=json.dumps({"action": action, "filter": {"from": since}, "dryRun": True}),
                content_type="application/json",
            )
            request.append((time.perf_counter() - began) * 1000)
            assert response.status_code == 200, response.content
        results[action] = {
            "matched": preview.matched,
            "touch": preview.touch,
            "skip": preview.skip,
            "service_p50_ms": round(statistics.median(service), 1),
            "request_p50_ms": round(statistics.median(request), 1),
            "request_max_ms": round(max(request), 1),
        }
    from django.db.models import Count

    counted = selection.queryset().order_by().values_list("status").annotate(n=Count("pk"))
    results["count_plan"] = counted.explain(analyze=True, buffers=True)
    return results


COMMANDS = {
    "bulk_preview": cmd_bulk_preview,
    "finish_cost": cmd_finish_cost,
    "prepare": cmd_prepare,
    "ingest_prepare": cmd_ingest_prepare,
    "queries": cmd_queries,
    "strip": cmd_strip,
    "cost_prepare": cmd_cost_prepare,
    "vacuum": lambda spec: vacuum() or {},
    "cleanup": lambda spec: {"removed": cleanup_ingest_runs(), **seeded_counts()},
    "counts": lambda spec: seeded_counts(),
}


def main() -> None:
    command = sys.argv[1]
    spec = json.loads(sys.stdin.read() or "{}") if not sys.stdin.isatty() else {}
    emit(COMMANDS[command](spec))


if __name__ == "__main__":
    main()
