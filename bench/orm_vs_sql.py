"""The runner PATCH's three statements through the ORM and through ``common.sql``, side by side.

    python -m bench.orm_vs_sql [--pg postgres://root@127.0.0.1:5432] [--iterations 2000]

The hand-written SQL of the hot path is kept only while it is clearly cheaper than the ORM doing
the same work: re-run this on each Django upgrade. It makes its own database (``elt_bench_micro``),
migrates it, and times each pair in one process, interleaved, on one run:

- the locked read of the run with its pipeline and gateway (``select_related`` +
  ``select_for_update`` vs ``select_joined``), inside a transaction;
- one log line stored (``bulk_create`` vs ``insert_rows``);
- the run's mutable columns written back (``save(update_fields=...)`` vs ``update_columns``).

It prints microseconds per operation (median of 5 rounds) and the ORM/SQL ratio.
"""

import argparse
import os
import statistics
import sys
import time
import urllib.parse
from collections.abc import Callable

from loadtest.stack import SECRET_KEY, recreate_database


def _prepare(pg: str) -> None:
    url = urllib.parse.urlparse(pg)._replace(path="/elt_bench_micro").geturl()
    recreate_database(url)
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("SECRET_KEY", SECRET_KEY)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


def _time(operation: Callable[[], None], iterations: int) -> float:
    started = time.perf_counter()
    for _ in range(iterations):
        operation()
    return (time.perf_counter() - started) / iterations * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--pg", default=os.environ.get("BENCH_PG", "postgres://root@127.0.0.1:5432")
    )
    parser.add_argument("--iterations", type=int, default=2000)
    args = parser.parse_args()
    _prepare(args.pg)

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import transaction
    from django.utils import timezone

    from common.sql import insert_rows, select_joined, update_columns
    from gateways.models import Gateway
    from pipelines.models import Pipeline
    from runs.models import LogLine, Run

    call_command("migrate", verbosity=0)
    gateway = Gateway.objects.create(name="bench-gw")
    run = Run.objects.create(
        pipeline=Pipeline.objects.create(name="bench", default_gateway=gateway), gateway=gateway
    )
    mutable = [
        field for field in Run._meta.concrete_fields if field.name not in Run.IMMUTABLE_FIELDS
    ]
    seq = iter(range(1, 10**9))

    def orm_lock() -> None:
        with transaction.atomic():
            Run.objects.select_related("pipeline", "gateway").select_for_update(
                of=("self",), no_key=True
            ).get(public_id=run.public_id)

    def sql_lock() -> None:
        with transaction.atomic():
            select_joined(
                Run, ["pipeline", "gateway"], filters={"public_id": run.public_id}, lock=True
            )

    def orm_insert() -> None:
        LogLine.objects.bulk_create(
            [LogLine(run=run, seq=next(seq), at=timezone.now(), level="info", message="x")]
        )

    def sql_insert() -> None:
        insert_rows(
            LogLine,
            [
                {
                    "run_id": run.pk,
                    "seq": next(seq),
                    "at": timezone.now(),
                    "level": "info",
                    "message": "x",
                    "node_id": "",
                }
            ],
        )

    def orm_update() -> None:
        run.save(update_fields=[field.name for field in mutable])

    def sql_update() -> None:
        update_columns(run, mutable)

    pairs = [
        ("locked read, run + pipeline + gateway", orm_lock, sql_lock),
        ("insert one log line", orm_insert, sql_insert),
        ("write back the mutable columns", orm_update, sql_update),
    ]
    print(f"{'operation':40} {'ORM µs':>9} {'SQL µs':>9} {'ORM/SQL':>8}")
    for label, orm, sql in pairs:
        orm_times, sql_times = [], []
        for _ in range(5):  # interleaved rounds, so drift on a busy machine hits both
            orm_times.append(_time(orm, args.iterations // 5))
            sql_times.append(_time(sql, args.iterations // 5))
        orm_us, sql_us = statistics.median(orm_times), statistics.median(sql_times)
        print(f"{label:40} {orm_us:9.0f} {sql_us:9.0f} {orm_us / sql_us:8.2f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
