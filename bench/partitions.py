"""Log partitions at scale: ``python -m bench.partitions``.

One command, PostgreSQL only. It recreates its own database, ``elt_bench_partitions``, migrates
it to runs' migration 0005 as ``bench.log_search`` does (plain ``runs_logline``), seeds RUNS runs
of LINES log lines each over DAYS days server-side (``bench.log_search.seed``), migrates to 0012,
and then times migration 0013, which converts the tables (one range per day of runs) and copies
every line. Then:

- reading one run's log (the newest 500 lines, the run-detail query) from the partitioned
  table and from a plain copy of it (``CREATE TABLE ... AS``, same unique index), p50/p90 over
  ``--repeat`` random runs, interleaved;
- removing one day of lines two ways: row by row as retention does outside the ranges (batches
  of ``RETENTION_LOG_BATCH_RUNS`` runs, one short transaction each) for the oldest day, and by
  ``runs.partitions.drop`` for the next day; while each runs, another connection appends one
  line at a time to a live run (through ``run_update``) and the appends' latencies are kept
  (p50, p99, max), beside the same appends with nothing else running, and with 40 more
  (empty) ranges, as a long retention keeps.

It prints a Markdown report and writes ``bench/out/partitions.json``.
"""

import argparse
import json
import os
import random
import statistics
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
DATABASE = "elt_bench_partitions"
BEFORE = "0005_patch_receipt_created_idx"  # as bench.log_search seeds it


def log(message: str) -> None:
    print(message, flush=True)


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    if not ordered:
        return {"n": 0}
    return {
        "n": len(ordered),
        "p50": round(statistics.median(ordered), 2),
        "p99": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 2),
        "max": round(ordered[-1], 2),
    }


class Appender(threading.Thread):
    """Appends one line at a time to ``run_pk`` until stopped; keeps each append's ms."""

    def __init__(self, run_pk: int):
        super().__init__(daemon=True)
        self.run_pk = run_pk
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        from django.db import connection

        from common.actors import Actor
        from runs.models import Run
        from runs.services import run_update

        try:
            while not self.stop.is_set():
                run = Run.objects.get(pk=self.run_pk)
                began = time.perf_counter()
                run_update(
                    actor=Actor.system(),
                    run=run,
                    changes={"append_log": {"level": "info", "message": "still loading"}},
                )
                self.latencies.append((time.perf_counter() - began) * 1000)
        except Exception as error:  # reported in the figures
            self.errors.append(repr(error))
        finally:
            connection.close()


def under_appends(run_pk: int, work) -> tuple[float, dict[str, float], list[str]]:
    appender = Appender(run_pk)
    appender.start()
    time.sleep(1.0)  # the appender's own warm-up
    began = time.monotonic()
    work()
    seconds = time.monotonic() - began
    time.sleep(0.5)
    appender.stop.set()
    appender.join(30)
    return seconds, percentiles(appender.latencies), appender.errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pg", default="postgres://root@127.0.0.1:5432")
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--lines", type=int, default=20, help="log lines per run")
    parser.add_argument("--days", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=300)
    args = parser.parse_args(argv)

    from bench.log_search import admin, seed

    admin(args.pg, f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    admin(args.pg, f'CREATE DATABASE "{DATABASE}"')
    os.environ["DATABASE_URL"] = f"{args.pg.rstrip('/')}/{DATABASE}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ["DEBUG"] = "false"
    os.environ.setdefault("SECRET_KEY", "bench-partitions-" + os.urandom(16).hex())
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.utils import timezone

    from common.actors import Actor
    from runs import partitions
    from runs.models import LogLine, Run, TelemetrySample
    from runs.retention import _scopes
    from runs.services import run_update

    call_command("migrate", "auth", verbosity=0)
    call_command("migrate", "runs", BEFORE, verbosity=0)
    call_command("migrate", "pipelines", verbosity=0)
    began = time.monotonic()
    seed(args.runs, args.lines, args.days)
    log(f"seeded {args.runs:,} runs x {args.lines} lines in {time.monotonic() - began:.0f} s")
    call_command("migrate", "runs", "0012", verbosity=0)
    began = time.monotonic()
    call_command("migrate", verbosity=0)
    conversion = time.monotonic() - began
    ranges = partitions.partitions()
    lines = args.runs * args.lines
    log(f"migration 0013: {conversion:.1f} s for {lines:,} lines, {len(ranges)} ranges")

    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE bench_plain_logline AS SELECT * FROM runs_logline")
        cursor.execute("CREATE UNIQUE INDEX ON bench_plain_logline (run_id, seq)")
        cursor.execute("ANALYZE bench_plain_logline")
        cursor.execute("ANALYZE runs_logline")
    read_sql = (
        "SELECT seq, at, level, message, node_id FROM {table} WHERE run_id = %s AND seq > %s "
        "ORDER BY seq LIMIT 500"
    )
    ids = list(Run.objects.values_list("pk", flat=True))
    reads: dict[str, list[float]] = {"partitioned": [], "plain": []}
    with connection.cursor() as cursor:
        for _ in range(args.repeat):
            pk = random.choice(ids)
            for name, table in (("partitioned", "runs_logline"), ("plain", "bench_plain_logline")):
                began = time.perf_counter()
                cursor.execute(read_sql.format(table=table), [pk, args.lines - 500])
                cursor.fetchall()
                reads[name].append((time.perf_counter() - began) * 1000)
        cursor.execute("DROP TABLE bench_plain_logline")

    # A live run in the newest range, for the appender.
    partitions.ensure_ahead(now=timezone.now())
    live = Run.objects.create(pipeline_id=Run.objects.values_list("pipeline_id", flat=True)[0])
    run_update(actor=Actor.system(), run=live, changes={"status": "running"})
    _, idle, idle_errors = under_appends(live.pk, lambda: time.sleep(5))
    # The same with 40 more (empty) ranges beyond the newest, as a 30-day retention keeps about
    # 31: what planning over many partitions costs an append.
    with transaction.atomic(), connection.cursor() as cursor:
        top = partitions.partitions()[-1].upper
        for index in range(40):
            partitions._create(
                cursor, partitions.Partition(top + index * 1000, top + (index + 1) * 1000)
            )
    many_ranges = len(partitions.partitions())
    _, idle_many, many_errors = under_appends(live.pk, lambda: time.sleep(5))
    idle_errors += many_errors

    oldest, second = ranges[0], ranges[1]
    scopes = _scopes("log_retention_days", settings.RUN_LOG_RETENTION_DAYS)
    day_lines = {
        name: LogLine.objects.filter(run_id__gte=p.lower, run_id__lt=p.upper).count()
        for name, p in (("rows", oldest), ("drop", second))
    }

    def by_rows() -> None:
        batch = settings.RETENTION_LOG_BATCH_RUNS
        run_ids = list(
            Run.objects.filter(partitions.runs_in(oldest))
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        for start in range(0, len(run_ids), batch):
            chunk = run_ids[start : start + batch]
            with transaction.atomic():
                LogLine.objects.filter(run_id__in=chunk).delete()
                TelemetrySample.objects.filter(run_id__in=chunk).delete()
                Run.objects.filter(pk__in=chunk).update(log_pruned_after_days=30)

    def by_drop() -> None:
        partitions.drop(
            second, scopes=scopes, default_days=settings.RUN_LOG_RETENTION_DAYS, now=timezone.now()
        )

    rows_seconds, rows_appends, rows_errors = under_appends(live.pk, by_rows)
    drop_seconds, drop_appends, drop_errors = under_appends(live.pk, by_drop)

    figures = {
        "runs": args.runs,
        "lines_per_run": args.lines,
        "days": args.days,
        "ranges": len(ranges),
        "conversion_seconds": round(conversion, 1),
        "read_ms": {name: percentiles(samples) for name, samples in reads.items()},
        "remove_a_day": {
            "rows": {"lines": day_lines["rows"], "seconds": round(rows_seconds, 2)},
            "drop": {"lines": day_lines["drop"], "seconds": round(drop_seconds, 3)},
        },
        "append_ms": {
            "idle": idle,
            f"idle_with_{many_ranges}_ranges": idle_many,
            "during_rows": rows_appends,
            "during_drop": drop_appends,
        },
        "append_errors": idle_errors + rows_errors + drop_errors,
        "loadavg": Path("/proc/loadavg").read_text().split()[:3],
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "partitions.json").write_text(json.dumps(figures, indent=2))
    log("")
    log("| figure | value |\n| --- | --- |")
    log(f"| migration 0013 (copy {args.runs * args.lines:,} lines) | {conversion:.1f} s |")
    for name, stats in figures["read_ms"].items():
        log(f"| read a run's log, {name} | p50 {stats['p50']} ms, p99 {stats['p99']} ms |")
    log(
        f"| remove a day, row by row ({day_lines['rows']:,} lines) | {rows_seconds:.2f} s |\n"
        f"| remove a day, drop its range ({day_lines['drop']:,} lines) | {drop_seconds:.3f} s |"
    )
    for name, stats in figures["append_ms"].items():
        log(
            f"| appendLog {name.replace('_', ' ')} | p50 {stats.get('p50')} ms, "
            f"p99 {stats.get('p99')} ms, max {stats.get('max')} ms (n={stats['n']}) |"
        )
    log(f"\nappend errors: {figures['append_errors'] or 'none'}; load {figures['loadavg']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
