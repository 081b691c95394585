"""Log search and run detail as a debugger at scale: ``python -m bench.log_search``.

One command, PostgreSQL only. It creates (or reuses) its own database, ``elt_bench_logs``,
migrates it up to the migration before the trigram index, seeds RUNS runs of LINES kept log lines
each server-side (``INSERT ... SELECT generate_series``, no rows cross the wire), then applies the
rest of the migrations, so the index is built the way production builds it: ``CREATE INDEX
CONCURRENTLY`` by migration 0008 over a full table (its build time is reported). Then, in-process
through Django's test client (server time without the HTTP hop):

- ``GET /api/logs?q=<rare word>&window=7d`` (a word in 0.01% of lines), first page, and a word in
  no line, p50/p90 of ``--repeat`` after a warm-up, each with ``EXPLAIN (ANALYZE, BUFFERS)`` of
  its SQL; the same without the window, and a common word, for information;
- run detail of a run with a 500-line log and 50 nodes (timeline drawn) beside the same page as
  the code before this work draws it (``--baseline``, a git revision, default the merge base
  with ``main``, exported with ``git archive`` under bench/out/), each measured in its own
  process with this interpreter, interleaved round by round so that load on the machine hits
  both alike;
- that the anchor of line 480 of 500 is in the first response of run detail (one load);
- with ``--ingest``: what the index costs a runner's ``appendLog``: p50 of single-line appends
  through ``run_update`` with the index, without it (migrated back to 0005), and with it again
  after the rebuild (so drift on the machine shows), which rebuilds the index once more.

It prints a Markdown report (the section bench/RESULTS.md keeps) and writes
``bench/out/log_search.json``.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.timing import timed_get
from common.actors import Actor

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
DATABASE = "elt_bench_logs"
RARE_WORD = "zyzzogeton"  # in one line of 10,000
ABSENT_WORD = "quetzalcoatl"  # in none
COMMON_WORD = "invoices"  # in about one line of 12
BEFORE_INDEX = "0005_patch_receipt_created_idx"
INDEX_MIGRATION = "0008_logline_message_trgm"
CHUNK_RUNS = 1000

DETAIL_SCRIPT = r"""
import os, statistics, sys, time, json
import django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
client = Client()
client.force_login(get_user_model().objects.get(username="bench-logs"))
url = "/runs/%s/" % sys.argv[1]
repeat = int(sys.argv[2])
for _ in range(3):
    assert client.get(url).status_code == 200
times = []
for _ in range(repeat):
    began = time.perf_counter()
    response = client.get(url)
    times.append((time.perf_counter() - began) * 1000)
with CaptureQueriesContext(connection) as queries:
    body = client.get(url).content
print(json.dumps({"p50": statistics.median(times), "queries": len(queries), "bytes": len(body)}))
"""


def log(message: str) -> None:
    print(f"[log_search {datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def admin(base: str, sql: str) -> list:
    import psycopg

    with psycopg.connect(f"{base.rstrip('/')}/postgres", autocommit=True) as conn:
        cursor = conn.execute(sql)
        return cursor.fetchall() if cursor.description else []


def seed(runs: int, lines: int, days: float) -> None:
    """Pipelines and gateways by the ORM; runs and lines by SQL, in chunks."""
    from django.db import connection, transaction

    from gateways.models import Gateway
    from pipelines.models import Pipeline

    gateways = [Gateway.objects.create(name=f"bench-logs-gw-{i}") for i in range(3)]
    pipelines = [
        Pipeline.objects.create(name=f"bench_logs_{i}", default_gateway=gateways[i % 3])
        for i in range(10)
    ]
    pipeline_ids = [p.pk for p in pipelines]
    gateway_ids = [p.default_gateway_id for p in pipelines]
    span_seconds = days * 86400
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit = off")
        for first in range(0, runs, CHUNK_RUNS):
            last = min(first + CHUNK_RUNS, runs)
            began = time.monotonic()
            with transaction.atomic():
                cursor.execute(
                    """
                    INSERT INTO runs_run (public_id, pipeline_id, gateway_id, status, trigger_type,
                        trigger, created_at, updated_at, started_at, finished_at, error_summary,
                        finished_by_system, telemetry_summary, log_seq, sample_seq)
                    SELECT 'run_' || lpad(to_hex(g), 26, '0'),
                        (%(pipelines)s::bigint[])[1 + g %% 10],
                        (%(gateways)s::bigint[])[1 + g %% 10],
                        CASE WHEN g %% 10 = 3 THEN 'failed' ELSE 'succeeded' END, 'schedule',
                        '{}', t, t + interval '10 minutes', t + interval '5 seconds',
                        t + interval '10 minutes',
                        CASE WHEN g %% 10 = 3 THEN 'load failed: deadlock detected' ELSE '' END,
                        false, '{}', %(lines)s, 0
                    FROM generate_series(%(first)s, %(last)s - 1) AS g,
                        LATERAL (SELECT now() - interval '1 hour'
                            - (%(runs)s - g) * (%(span)s / %(runs)s) * interval '1 second') AS c(t)
                    """,
                    {
                        "pipelines": pipeline_ids,
                        "gateways": gateway_ids,
                        "lines": lines,
                        "first": first,
                        "last": last,
                        "runs": runs,
                        "span": span_seconds,
                    },
                )
                cursor.execute(
                    """
                    INSERT INTO runs_logline (run_id, seq, at, level, message, node_id)
                    SELECT r.id, s, r.started_at + s * interval '1 second',
                        CASE WHEN h %% 200 = 0 THEN 'error' WHEN h %% 50 = 0 THEN 'warn'
                            ELSE 'info' END,
                        (ARRAY['extracted','loaded','merged','skipped','retrying','committed',
                            'scanned','wrote','read','flushed'])[1 + h %% 10]
                        || ' ' || (h %% 100000) || ' '
                        || (ARRAY['rows','batches','files','pages','records','partitions',
                            'chunks'])[1 + (h / 10) %% 7]
                        || ' from ' || (ARRAY['crm','erp','web','billing'])[1 + (h / 70) %% 4]
                        || '.' || (ARRAY['accounts','orders','invoices','customers','events',
                            'sessions','payments','products','shipments','refunds','users',
                            'subscriptions'])[1 + (h / 280) %% 12]
                        || ' in ' || (h %% 9973) || 'ms (batch '
                        || substr(md5(r.id::text || ':' || s::text), 1, 8) || ')'
                        || CASE WHEN (r.id * 7919 + s) %% 10000 = 0 THEN ' ' || %(rare)s
                            ELSE '' END,
                        'n_' || lpad(((s - 1) / 50)::text, 2, '0')
                    FROM runs_run r CROSS JOIN generate_series(1, %(lines)s) AS s,
                        LATERAL (SELECT abs(hashint8(r.id * 1000 + s)::bigint)) AS x(h)
                    WHERE r.public_id >= 'run_' || lpad(to_hex(%(first)s::bigint), 26, '0')
                        AND r.public_id <= 'run_' || lpad(to_hex(%(last)s::bigint - 1), 26, '0')
                    """,
                    {"lines": lines, "first": first, "last": last, "rare": RARE_WORD},
                )
            log(
                f"seeded runs {first:,}-{last - 1:,} ({(last - first) * lines:,} lines) in "
                f"{time.monotonic() - began:.1f} s"
            )
        cursor.execute("ANALYZE runs_run")
        cursor.execute("ANALYZE runs_logline")


def timed(client, url: str, repeat: int) -> dict:
    summary, response = timed_get(client, url, repeat)
    return {**summary, "hits": len(response.json()["data"])}


def explain(client, url: str) -> str:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        client.get(url)
    [sql] = [q["sql"] for q in captured.captured_queries if "runs_logline" in q["sql"]]
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}")
        return "\n".join(row[0] for row in cursor.fetchall())


def detail_run() -> tuple[str, int]:
    """The newest seeded run, given 50 nodes (one failed with retries) and an error line."""
    from datetime import timedelta

    from runs.models import LogLine, Run, RunNode

    run = Run.objects.filter(public_id__startswith="run_0").order_by("-created_at").first()
    RunNode.objects.filter(run=run).delete()
    start = run.started_at
    RunNode.objects.bulk_create(
        RunNode(
            run=run,
            node_id=f"n_{index:02d}",
            type="dbt.model",
            status="failed" if index == 41 else "succeeded",
            started_at=start + timedelta(seconds=10 * index),
            finished_at=start + timedelta(seconds=10 * index + 9 + index % 7),
            retries=2 if index == 41 else 0,
            metrics={"rowsOut": 1000 * index},
        )
        for index in range(50)
    )
    first_kept = run.log_seq - 500 + 1
    LogLine.objects.filter(run=run, seq=first_kept + 479).update(level="error")
    return run.public_id, first_kept + 479


def export_baseline(revision: str) -> tuple[str, Path]:
    """The tree of ``revision`` (default: where this branch left ``main``) under bench/out/."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=ROOT, check=True, capture_output=True, text=True
        ).stdout.strip()

    sha = git("rev-parse", revision or git("merge-base", "HEAD", "main"))
    target = OUT / f"baseline-{sha[:12]}"
    if not (target / "manage.py").exists():
        target.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "archive", sha], cwd=ROOT, check=True, capture_output=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return sha[:12], target


def append_cost(appends: int) -> dict:
    """p50/p90 ms of single-line appends through the service, on fresh running runs."""
    from runs import services
    from runs.models import Run, RunStatus

    template = Run.objects.order_by("-pk").first()
    runs = [
        services.run_trigger(pipeline=template.pipeline, gateway=template.gateway) for _ in range(4)
    ]
    for run in runs:
        services.run_update(actor=Actor.system(), run=run, changes={"status": RunStatus.RUNNING})
    times = []
    for index in range(appends):
        run = runs[index % len(runs)]
        message = f"loaded {index * 37 % 10007} rows from crm.accounts in {index % 977}ms"
        began = time.perf_counter()
        services.run_update(
            actor=Actor.system(),
            run=run,
            changes={"append_log": {"level": "info", "message": message}},
        )
        times.append((time.perf_counter() - began) * 1000)
    Run.objects.filter(pk__in=[run.pk for run in runs]).delete()
    times.sort()
    return {
        "p50_ms": round(statistics.median(times), 3),
        "p90_ms": round(times[int(len(times) * 0.9) - 1], 3),
    }


def measure_ingest(appends: int) -> dict:
    from django.core.management import call_command

    with_index = append_cost(appends)
    call_command("migrate", "runs", BEFORE_INDEX, verbosity=0)
    without_index = append_cost(appends)
    began = time.monotonic()
    call_command("migrate", verbosity=0)
    rebuild_seconds = round(time.monotonic() - began, 1)
    again = append_cost(appends)
    return {
        "with_index": with_index,
        "without_index": without_index,
        "with_index_again": again,
        "rebuild_seconds": rebuild_seconds,
    }


def measure_detail(python: str, cwd: str, env: dict, run_id: str, repeat: int) -> dict:
    done = subprocess.run(
        [python, "-c", DETAIL_SCRIPT, run_id, str(repeat)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if done.returncode != 0:
        raise SystemExit(f"run detail in {cwd} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pg", default="postgres://root@127.0.0.1:5432")
    parser.add_argument("--runs", type=int, default=20_000)
    parser.add_argument("--lines", type=int, default=500, help="kept log lines per run")
    parser.add_argument("--days", type=float, default=28.0)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3, help="run detail rounds per checkout")
    parser.add_argument("--baseline", default="", help="git revision of today's code")
    parser.add_argument("--reseed", action="store_true")
    parser.add_argument(
        "--ingest", type=int, default=0, metavar="N", help="also time N appends without the index"
    )
    args = parser.parse_args(argv)

    url = f"{args.pg.rstrip('/')}/{DATABASE}"
    if args.reseed:
        admin(args.pg, f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    if not admin(args.pg, f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"):  # noqa: S608
        admin(args.pg, f'CREATE DATABASE "{DATABASE}"')
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ["DEBUG"] = "false"
    os.environ.setdefault("SECRET_KEY", "bench-log-search-" + os.urandom(16).hex())
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.core.management import call_command
    from django.db import connection
    from django.db.migrations.recorder import MigrationRecorder
    from django.test import Client

    from common.roles import Role
    from gateways.services import api_key_issue
    from runs.models import LogLine, Run

    fresh = not MigrationRecorder(connection).has_table() or not (
        MigrationRecorder.Migration.objects.filter(app="runs", name=INDEX_MIGRATION).exists()
    )
    if fresh:
        # Seed before the index exists, so that migration 0008 builds it over a full table.
        call_command("migrate", "runs", BEFORE_INDEX, verbosity=0)
        # The seed makes pipelines through the ORM: their table as the code has it.
        call_command("migrate", "pipelines", verbosity=0)
    expected = args.runs * args.lines
    kept = LogLine.objects.count()
    if kept != expected:
        if kept or not fresh:
            raise SystemExit(f"{DATABASE} holds {kept:,} lines, not {expected:,}: use --reseed")
        log(f"seeding {args.runs:,} runs x {args.lines} lines = {expected:,} lines")
        began = time.monotonic()
        seed(args.runs, args.lines, args.days)
        seed_seconds = round(time.monotonic() - began, 1)
    else:
        log(f"reusing {kept:,} lines")
        seed_seconds = None
    with connection.cursor() as cursor:
        # The session's memory for the index build (the server's default is 64 MB).
        cursor.execute("SET maintenance_work_mem = '512MB'")
    began = time.monotonic()
    call_command("migrate", verbosity=0)
    index_seconds = round(time.monotonic() - began, 1)
    log(f"migrations (the trigram index, the partitioned tables) took {index_seconds} s")
    index_seconds = index_seconds if fresh else None
    with connection.cursor() as cursor:
        # Summed over the partitions (runs.partitions), or the plain relation itself.
        size = "SELECT pg_size_pretty(sum(pg_relation_size(relid))) FROM pg_partition_tree(%s)"
        cursor.execute(size, ["logline_message_trgm"])
        index_size = cursor.fetchone()[0]
        cursor.execute(size, ["runs_logline"])
        table_size = cursor.fetchone()[0]
        cursor.execute(
            f"SELECT count(*) FROM runs_logline WHERE message LIKE '%%{RARE_WORD}%%'"  # noqa: S608
        )
        rare_lines = cursor.fetchone()[0]

    user, _ = get_user_model().objects.get_or_create(username="bench-logs")
    user.groups.add(Group.objects.get(name=Role.VIEWER))  # searching logs is a viewer's read
    _, key = api_key_issue(actor=Actor.system(), user=user)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    cases = {
        "rare word, last 7 days": f"/api/logs?q={RARE_WORD}&window=7d",
        "word in no line, last 7 days": f"/api/logs?q={ABSENT_WORD}&window=7d",
        "rare word, all runs": f"/api/logs?q={RARE_WORD}",
        "word in no line, all runs": f"/api/logs?q={ABSENT_WORD}",
        "common word, last 7 days (info)": f"/api/logs?q={COMMON_WORD}&window=7d",
        "rare word, failed runs of one pipeline (info)": (
            f"/api/logs?q={RARE_WORD}&status=failed&pipelineId="
            + Run.objects.filter(status="failed")
            .order_by("pk")
            .values_list("pipeline__public_id", flat=True)
            .first()
        ),
    }
    search = {}
    for name, case_url in cases.items():
        search[name] = {"url": case_url, **timed(client, case_url, args.repeat)}
        search[name]["plan"] = explain(client, case_url)
        log(f"{name}: p50 {search[name]['p50_ms']} ms, {search[name]['hits']} hits")

    run_id, line_480 = detail_run()
    session = Client()
    session.force_login(user)
    first = session.get(f"/runs/{run_id}/").content.decode()
    anchor = {"line": line_480, "in_first_response": f'id="L{line_480}"' in first}

    env = dict(os.environ)
    mine, base = [], []
    revision, baseline = export_baseline(args.baseline)
    for _ in range(args.rounds):
        mine.append(measure_detail(sys.executable, str(ROOT), env, run_id, args.repeat))
        base.append(measure_detail(sys.executable, str(baseline), env, run_id, args.repeat))
    detail = {
        "baseline": revision,
        "this_p50_ms": round(statistics.median(m["p50"] for m in mine), 2),
        "baseline_p50_ms": round(statistics.median(b["p50"] for b in base), 2),
        "this_queries": mine[-1]["queries"],
        "baseline_queries": base[-1]["queries"],
        "this_bytes": mine[-1]["bytes"],
        "baseline_bytes": base[-1]["bytes"],
        "rounds": {"this": [m["p50"] for m in mine], "baseline": [b["p50"] for b in base]},
    }
    detail["ratio"] = round(detail["this_p50_ms"] / detail["baseline_p50_ms"], 2)
    log(f"run detail: {detail}")

    ingest = measure_ingest(args.ingest) if args.ingest else None
    if ingest:
        log(f"appendLog cost: {ingest}")
    results = {
        "ingest": ingest,
        "ingest_n": args.ingest,
        "taken": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "runs": Run.objects.count(),
        "lines": LogLine.objects.count(),
        "rare_lines": rare_lines,
        "seed_seconds": seed_seconds,
        "index_seconds": index_seconds,
        "index_size": index_size,
        "table_size": table_size,
        "search": search,
        "detail": detail,
        "anchor": anchor,
    }
    OUT.mkdir(exist_ok=True)
    (OUT / "log_search.json").write_text(json.dumps(results, indent=2))
    print(report(results))
    return 0


def report(results: dict) -> str:
    rows = [
        f"| `{case['url']}` ({name}) | {case['p50_ms']} | {case['p90_ms']} | {case['hits']} |"
        for name, case in results["search"].items()
    ]
    detail = results["detail"]
    plans = "\n\n".join(
        f"{name}:\n\n```\n{case['plan']}\n```" for name, case in results["search"].items()
    )
    return "\n".join(
        [
            f"Taken {results['taken']} on {results['machine']}, load average at the end "
            f"{results['load_average']}; {results['runs']:,} runs, {results['lines']:,} kept "
            f"lines ({results['rare_lines']:,} with the rare word); table {results['table_size']}"
            f", trigram index {results['index_size']}, "
            + (
                f"built CONCURRENTLY by migration 0008 in {results['index_seconds']} s."
                if results["index_seconds"] is not None
                else "built by an earlier run."
            ),
            "",
            "| request (first page, limit 50) | p50 ms | p90 ms | hits |",
            "| --- | --- | --- | --- |",
            *rows,
            "",
            f"Run detail, 500-line log and 50-node timeline: {detail['this_p50_ms']} ms "
            f"({detail['this_queries']} queries, {detail['this_bytes']:,} bytes) against "
            f"{detail['baseline_p50_ms']} ms today ({detail['baseline_queries']} queries, "
            f"{detail['baseline_bytes']:,} bytes, revision {detail['baseline']}): "
            f"{detail['ratio']}x. Rounds: {detail['rounds']}.",
            f"Anchor of line {results['anchor']['line']} (the 480th of 500) in the first "
            f"response: {results['anchor']['in_first_response']}.",
            *(
                [
                    f"`appendLog` through `run_update`, p50 / p90 ms of {results['ingest_n']}: "
                    f"with the index {results['ingest']['with_index']}, without it "
                    f"{results['ingest']['without_index']}, with it again after the rebuild "
                    f"({results['ingest']['rebuild_seconds']} s) "
                    f"{results['ingest']['with_index_again']}."
                ]
                if results["ingest"]
                else []
            ),
            "",
            plans,
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
