"""Log lines and telemetry samples in partitions by range of run id (PostgreSQL only).

``runs_logline`` and ``runs_telemetrysample`` are declaratively partitioned ``BY RANGE
(run_id)`` (migration 0013). Run ids are handed out in creation order, so a range of ids is a
span of time, and every line of a run lives in one partition: a run's order, cap and trim stay
single-partition statements, and the unique key ``(run_id, seq)`` stays enforced.

- The worker's clock keeps the next range created ahead of the newest run
  (``log_partitions_ensure``), sized from the last day's run count so that a partition holds
  about a day (never fewer than ``LOG_PARTITION_MIN_RUNS`` runs). Both tables always have the
  same ranges, created and dropped together.
- A ``DEFAULT`` partition catches what no range holds: a burst the clock has not caught up
  with, and the lines of runs kept longer than the partition they were in (below). A range is
  never created over rows the default partition already holds: it starts above them.
- Retention drops a whole range once every run in it is past its log retention
  (``log_partitions_drop``), instead of deleting its rows one batch at a time. The runs are
  marked ``log_pruned_after_days`` in the same transaction. Runs of pipelines that keep their
  logs longer than the default are moved to the default partition first, where the row-by-row
  pruning of ``runs.retention`` takes them in their time.

SQLite keeps plain tables, and so does a PostgreSQL database whose tables were never
converted: ``partitioned()`` is False there and retention deletes rows as before.
"""

import itertools
import operator
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import reduce

from django.conf import settings
from django.db import OperationalError, connection, transaction
from django.db.models import Q

from runs.models import FINAL_STATUSES, Run

TABLES = ("runs_logline", "runs_telemetrysample")
# How long creating or dropping a range waits for the tables' lock before giving up until the
# next tick. Below PostgreSQL's deadlock_timeout (1 s): appends take the two tables in either
# order, so a wait can be a cycle, and then it is this job that gives up, never a runner.
LOCK_TIMEOUT = "500ms"
_BOUND = re.compile(r"FOR VALUES FROM \('?(-?\d+)'?\) TO \('?(-?\d+)'?\)")


@dataclass(frozen=True, order=True)
class Partition:
    lower: int  # the first run id it holds
    upper: int  # the first run id it does not hold

    def name(self, table: str) -> str:
        return f"{table}_p{self.lower}"


def partitioned() -> bool:
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = %s::regclass)",
            [TABLES[0]],
        )
        return bool(cursor.fetchone()[0])


def partitions() -> list[Partition]:
    """The ranges, oldest first (the default partition is not one of them)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i "
            "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass",
            [TABLES[0]],
        )
        bounds = [_BOUND.match(row[0]) for row in cursor.fetchall()]
    return sorted(Partition(int(b[1]), int(b[2])) for b in bounds if b)


def last_run_id() -> int:
    """The last run id handed out (committed or not), from the runs' id sequence: a range the
    sequence has gone past gets no new runs."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_serial_sequence('runs_run', 'id')")
        cursor.execute(
            f"SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END "  # noqa: S608
            f"FROM {cursor.fetchone()[0]}"
        )
        return cursor.fetchone()[0]


def _default_max_run_id(cursor) -> int:
    """The highest run id with rows in a default partition (0 when they are empty)."""
    cursor.execute(
        " UNION ALL ".join(f"SELECT max(run_id) FROM {table}_default" for table in TABLES)  # noqa: S608
    )
    return max((row[0] or 0 for row in cursor.fetchall()), default=0)


def _lock_tables(cursor, *, attempts: int = 20) -> None:
    """Hold both tables exclusively for the rest of the transaction. Appends take them in either
    order (lines then samples, or a read of samples first), so waiting for the second while
    holding the first could close a cycle with a runner: the second is asked for without
    waiting, and on a refusal both are let go and asked for again a moment later."""
    for attempt in range(attempts):
        try:
            with transaction.atomic():  # a savepoint: its rollback lets the first lock go
                cursor.execute(f"LOCK TABLE {TABLES[0]} IN ACCESS EXCLUSIVE MODE")
                cursor.execute(f"LOCK TABLE {TABLES[1]} IN ACCESS EXCLUSIVE MODE NOWAIT")
            return
        except OperationalError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.02 * (attempt + 1))


def _create(cursor, partition: Partition) -> None:
    for table in TABLES:
        cursor.execute(
            f"CREATE TABLE {partition.name(table)} PARTITION OF {table} "
            f"FOR VALUES FROM ({partition.lower}) TO ({partition.upper})"
        )


def next_width(now: datetime) -> int:
    """About a day of runs: as many as were created in the last 24 hours."""
    day = Run.objects.filter(created_at__gte=now - timedelta(days=1)).count()
    return max(settings.LOG_PARTITION_MIN_RUNS, day)


def ensure_ahead(*, now: datetime) -> list[Partition]:
    """Create ranges until one starts above the newest run by at least a partition's width;
    answers the ranges created."""
    created: list[Partition] = []
    width = next_width(now)
    newest = last_run_id()
    existing = partitions()
    if existing and existing[-1].upper > newest + width:
        return created  # far enough ahead: no lock taken
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        _lock_tables(cursor)
        start = max(existing[-1].upper if existing else 1, _default_max_run_id(cursor) + 1)
        # The range holding the newest run, and the next one.
        while not existing or existing[-1].upper <= newest + width:
            partition = Partition(start, max(start, newest + 1) + width)
            _create(cursor, partition)
            created.append(partition)
            existing.append(partition)
            start = partition.upper
    return created


def create_by_day() -> list[Partition]:
    """Ranges for the runs already stored, one per day of creation, and one ahead (used when
    the tables are first partitioned)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT min(id) FROM runs_run GROUP BY date_trunc('day', created_at) ORDER BY 1"
        )
        starts = [row[0] for row in cursor.fetchall()]
        if not starts:
            return []
        cursor.execute("SELECT max(id) FROM runs_run")
        newest = cursor.fetchone()[0]
        width = max(settings.LOG_PARTITION_MIN_RUNS, newest // max(len(starts), 1))
        bounds = [*sorted(set(starts)), newest + 1 + width]
        created = [Partition(lo, hi) for lo, hi in itertools.pairwise(bounds) if lo < hi]
        for partition in created:
            _create(cursor, partition)
    return created


# Retention ------------------------------------------------------------------------------------


def _scope_q(scopes: list[tuple[int, Q]], now: datetime) -> Q:
    """Runs of these scopes that are not yet past their log retention."""
    kept = Q(pk__in=[])
    for days, scope in scopes:
        kept |= scope & ~Q(status__in=FINAL_STATUSES, finished_at__lt=now - timedelta(days=days))
    return kept


def runs_in(partition: Partition) -> Q:
    """The runs whose lines the range holds."""
    return Q(pk__gte=partition.lower, pk__lt=partition.upper)


_HAS_LINES = Q(log_seq__gt=0) | Q(sample_seq__gt=0)


def droppable(
    partition: Partition, *, scopes: list[tuple[int, Q]], default_days: int, now: datetime
) -> bool:
    """Every run of the range that has lines, and keeps its logs no longer than the default,
    is past its retention (or already pruned)."""
    held = [(days, scope) for days, scope in scopes if days <= default_days]
    return not Run.objects.filter(
        runs_in(partition), _HAS_LINES, _scope_q(held, now), log_pruned_after_days__isnull=True
    ).exists()


def drop(
    partition: Partition, *, scopes: list[tuple[int, Q]], default_days: int, now: datetime
) -> dict[str, int]:
    """Mark the range's runs pruned, move the lines of runs kept longer to the default
    partition, and drop the range, in one transaction."""
    counts = {"runs with log removed": 0, "log partitions": 0}
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        # The runs first (old, finished ones: no runner locks them), then the tables, held only
        # for the detach, the move and the drop: appends wait that long.
        pending = Run.objects.filter(
            runs_in(partition), _HAS_LINES, log_pruned_after_days__isnull=True
        )
        for days, scope in scopes:
            if days <= default_days:
                counts["runs with log removed"] += pending.filter(scope).update(
                    log_pruned_after_days=days
                )
        # A table with deferred foreign-key checks still to run cannot be dropped: run them now
        # (only an enclosing transaction that wrote lines has any).
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        kept = list(pending.values_list("pk", flat=True))
        _lock_tables(cursor)
        for table in TABLES:
            name = partition.name(table)
            cursor.execute(f"ALTER TABLE {table} DETACH PARTITION {name}")
            if kept:
                names = ", ".join(connection.ops.quote_name(c) for c in columns(table))
                cursor.execute(
                    f"INSERT INTO {table} ({names}) SELECT {names} FROM {name} "  # noqa: S608
                    "WHERE run_id = ANY(%s)",
                    [kept],
                )
            cursor.execute(f"DROP TABLE {name}")
        counts["log partitions"] = 1
    return counts


def columns(table: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
            "AND NOT attisdropped ORDER BY attnum",
            [table],
        )
        return [row[0] for row in cursor.fetchall()]


def covered() -> Q | None:
    """Runs whose lines are in a range (not in the default partition), None when there is no
    range: contiguous ranges merged, so that this is one or two conditions."""
    merged: list[list[int]] = []
    for partition in partitions():
        if merged and merged[-1][1] == partition.lower:
            merged[-1][1] = partition.upper
        else:
            merged.append([partition.lower, partition.upper])
    ranges = [Q(pk__gte=lower, pk__lt=upper) for lower, upper in merged]
    return reduce(operator.or_, ranges) if ranges else None
