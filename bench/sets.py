"""The Runs list as a tool for sets of runs, at scale: ``python -m bench.sets --runs N``.

PostgreSQL only, one history size per invocation, its own database (``elt_bench_sets_<N>``). It
migrates up to the migration before the label and sort indexes, seeds N runs server-side
(``INSERT ... SELECT generate_series``: labels, statuses, triggers, durations, rows and bytes
spread over 10 pipelines and 3 gateways, 2% queued with no start), then applies migration 0011 so
the indexes build the way production builds them (``CONCURRENTLY``, timed). Then, in-process
through Django's test client (server time without the HTTP hop), p50/p90 of ``--repeat`` after
a warm-up, with the SQL query count of each request:

- ``GET /api/runs`` (limit 50) under each new filter, exclusion and sort, the first page and the
  third (walked by ``meta.cursor``), and a sort under a filter;
- the Runs page (``/runs/``) under a label filter, an exclusion and a sort;
- the export (``GET /api/runs/export``) of every run as NDJSON and CSV, each in a fresh process
  that reports rows/s and its peak RSS before and after streaming the whole set.

Prints a Markdown table and writes ``bench/out/sets-<N>.json``. Compare two sizes with
``--compare 10000,1000000`` (reads the two JSON files).
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from bench.timing import timed_get

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
BEFORE_INDEXES = "0010_run_labels"
CHUNK_RUNS = 50_000
USERNAME = "bench-sets"

EXPORT_SCRIPT = r"""
import json, os, resource, sys, time
import django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()
from django.contrib.auth import get_user_model
from django.test import Client
client = Client()
client.force_login(get_user_model().objects.get(username=sys.argv[1]))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
began, cpu = time.perf_counter(), time.process_time()
response = client.get("/api/runs/export?format=" + sys.argv[2])
assert response.status_code == 200
size = rows = 0
for chunk in response.streaming_content:
    size += len(chunk)
    rows += chunk.count(b"\n")
seconds, cpu_seconds = time.perf_counter() - began, time.process_time() - cpu
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
rows -= 1 if sys.argv[2] == "csv" else 0
print(json.dumps({"rows": rows, "seconds": seconds, "cpu_seconds": cpu_seconds, "bytes": size,
                  "rss_before_mb": before / 1024, "rss_peak_mb": after / 1024}))
"""

API_CASES = [
    ("default (-createdAt)", ""),
    ("label=team:finance", "label=team:finance"),
    ("label x2 (team+env)", "label=team:finance&label=env:prod"),
    ("label rare (audit:yes)", "label=audit:yes"),
    ("excludeStatus=succeeded", "excludeStatus=succeeded"),
    ("excludePipelineId", "excludePipelineId={pipeline}"),
    ("excludeGatewayId", "excludeGatewayId={gateway}"),
    ("excludeTrigger=schedule", "excludeTrigger=schedule"),
    ("excludeLabel=env:dev", "excludeLabel=env:dev"),
    ("status=failed&excludeLabel", "status=failed&excludeLabel=team:growth"),
    ("sort=createdAt", "sort=createdAt"),
    ("sort=-startedAt", "sort=-startedAt"),
    ("sort=-durationSeconds", "sort=-durationSeconds"),
    ("sort=durationSeconds", "sort=durationSeconds"),
    ("sort=-rowsLoaded", "sort=-rowsLoaded"),
    ("sort=-bytesLoaded", "sort=-bytesLoaded"),
    ("status=failed&sort=-durationSeconds", "status=failed&sort=-durationSeconds"),
    ("label=team:finance&sort=-rowsLoaded", "label=team:finance&sort=-rowsLoaded"),
]
PAGE_CASES = [
    ("page label=team:finance", "label=team:finance"),
    ("page excludeStatus=succeeded", "excludeStatus=succeeded"),
    ("page sort=-durationSeconds", "sort=-durationSeconds"),
]


def log(message: str) -> None:
    print(f"[sets {datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def admin(base: str, sql: str) -> list:
    import psycopg

    with psycopg.connect(f"{base.rstrip('/')}/postgres", autocommit=True) as conn:
        cursor = conn.execute(sql)
        return cursor.fetchall() if cursor.description else []


def seed(runs: int) -> None:
    from django.db import connection, transaction

    from gateways.models import Gateway
    from pipelines.models import Pipeline

    gateways = [Gateway.objects.create(name=f"bench-sets-gw-{i}") for i in range(3)]
    pipelines = [
        Pipeline.objects.create(name=f"bench_sets_{i}", default_gateway=gateways[i % 3])
        for i in range(10)
    ]
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit = off")
        for first in range(0, runs, CHUNK_RUNS):
            last = min(first + CHUNK_RUNS, runs)
            with transaction.atomic():
                cursor.execute(
                    """
                    INSERT INTO runs_run (public_id, pipeline_id, gateway_id, status, trigger_type,
                        trigger, labels, created_at, updated_at, started_at, finished_at,
                        error_summary, finished_by_system, telemetry_summary, rows_loaded,
                        bytes_loaded, progress, log_seq, sample_seq)
                    SELECT 'run_' || lpad(to_hex(g), 26, '0'),
                        (%(pipelines)s::bigint[])[1 + g %% 10],
                        (%(gateways)s::bigint[])[1 + g %% 3],
                        CASE WHEN q THEN 'queued' WHEN g %% 10 = 3 THEN 'failed'
                            ELSE 'succeeded' END,
                        (ARRAY['schedule','api','manual','backfill'])[1 + g %% 4],
                        '{}',
                        jsonb_build_object(
                            'team', (ARRAY['finance','growth','ops','data','web'])[1 + g %% 5],
                            'env', (ARRAY['prod','dev','staging'])[1 + g %% 3])
                            || CASE WHEN g %% 10000 = 7 THEN '{"audit": "yes"}'::jsonb
                                ELSE '{}'::jsonb END,
                        t, t, CASE WHEN q THEN NULL ELSE t + interval '5 seconds' END,
                        CASE WHEN q THEN NULL
                            ELSE t + interval '5 seconds'
                                + (g::bigint * 7919 %% 7200) * interval '1 second'
                        END,
                        '', false, '{}',
                        CASE WHEN q THEN NULL ELSE g::bigint * 104729 %% 5000000 END,
                        CASE WHEN q THEN NULL ELSE g::bigint * 15485863 %% 2000000000 END,
                        CASE WHEN q THEN NULL ELSE 100 END, 0, 0
                    FROM generate_series(%(first)s, %(last)s - 1) AS g,
                        LATERAL (SELECT now() - (%(runs)s - g) * interval '20 seconds',
                            g %% 50 = 0) AS c(t, q)
                    """,
                    {
                        "pipelines": [p.pk for p in pipelines],
                        "gateways": [g.pk for g in gateways],
                        "first": first,
                        "last": last,
                        "runs": runs,
                    },
                )
            log(f"seeded runs {first:,}-{last - 1:,}")
        cursor.execute("ANALYZE runs_run")


def timed(client, url: str, repeat: int) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    summary, _ = timed_get(client, url, repeat)
    with CaptureQueriesContext(connection) as captured:
        client.get(url)
    return {**summary, "queries": len(captured.captured_queries)}


def third_page(client, query: str) -> str:
    url = f"/api/runs?limit=50&{query}"
    for _ in range(2):
        cursor = client.get(url).json()["meta"]["cursor"]
        if not cursor:
            return url
        url = f"/api/runs?limit=50&{query}&cursor={cursor}"
    return url


def measure(args) -> dict:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.test import Client

    from gateways.models import Gateway
    from pipelines.models import Pipeline

    user, _ = get_user_model().objects.get_or_create(username=USERNAME)
    user.groups.add(Group.objects.get(name="viewer"))
    client = Client()
    client.force_login(user)
    names = {
        "pipeline": Pipeline.objects.get(name="bench_sets_3").public_id,
        "gateway": Gateway.objects.get(name="bench-sets-gw-1").public_id,
    }
    results: dict = {"api": {}, "page": {}, "export": {}}
    for label, template in API_CASES:
        query = template.format(**names)
        first = timed(client, f"/api/runs?limit=50&{query}", args.repeat)
        third = timed(client, third_page(client, query), args.repeat)
        meta = client.get(f"/api/runs?limit=50&{query}").json()["meta"]
        results["api"][label] = {
            "first": first,
            "third": third,
            "total": meta.get("total", f"{meta.get('totalAtLeast')}+"),
        }
        log(f"{label}: first {first['p50_ms']} ms, third {third['p50_ms']} ms")
    for label, query in PAGE_CASES:
        results["page"][label] = timed(client, f"/runs/?{query}", max(5, args.repeat // 2))
        log(f"{label}: {results['page'][label]['p50_ms']} ms")
    for fmt in [fmt for fmt in args.exports.split(",") if fmt]:
        output = subprocess.run(
            [sys.executable, "-c", EXPORT_SCRIPT, USERNAME, fmt],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
            env=os.environ,
        ).stdout
        figures = json.loads(output.strip().splitlines()[-1])
        figures["rows_per_s"] = round(figures["rows"] / figures["seconds"])
        figures["rows_per_cpu_s"] = round(figures["rows"] / figures["cpu_seconds"])
        results["export"][fmt] = figures
        log(f"export {fmt}: {figures['rows']:,} rows at {figures['rows_per_s']:,}/s")
    return results


def report(runs: int, results: dict, extra: dict) -> str:
    lines = [
        f"### Sets of runs at {runs:,} runs ({extra['machine']})",
        "",
        f"Index build (migration 0011, CONCURRENTLY): {extra['index_seconds']} s. "
        f"Load average at start: {extra['load_before']}, at end: {extra['load_after']}.",
        "",
        "| `GET /api/runs?` | matches | first page p50 / p90 ms | third page p50 ms | queries |",
        "| --- | --- | --- | --- | --- |",
    ]
    for label, row in results["api"].items():
        lines.append(
            f"| {label} | {row['total']} | {row['first']['p50_ms']} / {row['first']['p90_ms']} "
            f"| {row['third']['p50_ms']} | {row['first']['queries']} |"
        )
    lines += ["", "| Runs page | p50 / p90 ms | queries |", "| --- | --- | --- |"]
    for label, row in results["page"].items():
        lines.append(f"| {label} | {row['p50_ms']} / {row['p90_ms']} | {row['queries']} |")
    lines += [
        "",
        "| export | rows | rows/s (wall) | rows per CPU second | MB | RSS before / peak MB |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for fmt, row in results["export"].items():
        lines.append(
            f"| {fmt} | {row['rows']:,} | {row['rows_per_s']:,} | {row['rows_per_cpu_s']:,} "
            f"| {row['bytes'] / 1e6:.1f} "
            f"| {row['rss_before_mb']:.0f} / {row['rss_peak_mb']:.0f} |"
        )
    return "\n".join(lines)


def compare(sizes: list[int]) -> str:
    small, large = (json.loads((OUT / f"sets-{size}.json").read_text()) for size in sizes)
    lines = [
        f"| case | {sizes[0]:,} p50 ms | {sizes[1]:,} p50 ms | ratio | within 1.5x |",
        "| --- | --- | --- | --- | --- |",
    ]
    for label, row in small["results"]["api"].items():
        a = row["first"]["p50_ms"]
        b = large["results"]["api"][label]["first"]["p50_ms"]
        lines.append(f"| {label} | {a} | {b} | {b / a:.2f} | {'yes' if b / a <= 1.5 else 'NO'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pg", default="postgres://root@127.0.0.1:5432")
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--reseed", action="store_true")
    parser.add_argument("--exports", default="ndjson,csv", help="formats to export, in order")
    parser.add_argument("--compare", default="", help="two sizes, e.g. 10000,1000000")
    args = parser.parse_args(argv)
    if args.compare:
        print(compare([int(size) for size in args.compare.split(",")]))
        return 0

    database = f"elt_bench_sets_{args.runs}"
    if args.reseed:
        admin(args.pg, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    if not admin(args.pg, f"SELECT 1 FROM pg_database WHERE datname = '{database}'"):  # noqa: S608
        admin(args.pg, f'CREATE DATABASE "{database}"')
    os.environ["DATABASE_URL"] = f"{args.pg.rstrip('/')}/{database}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ["DEBUG"] = "false"
    os.environ.setdefault("SECRET_KEY", "bench-sets-" + os.urandom(16).hex())
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from runs.models import Run

    load_before = " ".join(f"{value:.2f}" for value in os.getloadavg())
    call_command("migrate", verbosity=0)
    existing = Run.objects.count()
    if existing == 0:
        # Seed before the label and sort indexes exist, so that 0011 builds them over a full
        # table, as it would on an existing installation.
        call_command("migrate", "runs", BEFORE_INDEXES, verbosity=0)
        log(f"seeding {args.runs:,} runs")
        seed(args.runs)
    elif existing != args.runs:
        raise SystemExit(f"{database} holds {existing:,} runs, not {args.runs:,}: use --reseed")
    with connection.cursor() as cursor:
        cursor.execute("SET maintenance_work_mem = '512MB'")
    began = time.monotonic()
    call_command("migrate", verbosity=0)
    index_seconds = round(time.monotonic() - began, 1)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE runs_run")
    results = measure(args)
    extra = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        "shared with other work",
        "index_seconds": index_seconds,
        "load_before": load_before,
        "load_after": " ".join(f"{value:.2f}" for value in os.getloadavg()),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"sets-{args.runs}.json").write_text(
        json.dumps({"results": results, "extra": extra}, indent=2)
    )
    print(report(args.runs, results, extra))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
