"""Closed days of each pipeline's runs, summed once (``PipelineDay``), for the window figures of
the pipeline pages and ``GET /api/pipelines/{id}``.

A window's figures (counts by status, duration p50/p90, rows and bytes medians, all exact) would
otherwise read every run created in it, so they grew with the window: 30 days of a busy history
are tens of thousands of runs. Here a window is its built days, read as one row per pipeline and
day, plus the rest (the part of its first and last day it covers, days not built yet, and days a
pipeline still has open) read from the runs. The figures are the same either way: each built row
keeps the succeeded runs' values themselves (sorted), not a summary of them.

- **Build** (``build``, the periodic ``runs.tasks.pipeline_days_build``): days that closed more
  than ``PIPELINE_DAY_GRACE`` ago, newest first, back to ``PIPELINE_DAYS_KEPT`` days; and rows
  marked open, summed again. A pipeline with a run that is not final on that day gets an open
  row, which readers skip.
- **Forget** (``forget``): a change to a run of a closed day that was final (a late report) or
  its deletion (retention) marks its day's row open, in the writer's transaction.

The two never race: ``build`` holds a transaction-level advisory lock exclusively, taken before
it reads the runs, and ``forget`` takes it shared before it marks. A writer that changed a run
before a build read it marks the build's row open right after the build commits; a build that
finds a writer's lock held tries again at the next tick. (On SQLite every transaction holds the
database's write lock from its start, so the two never overlap there either.)
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, cast

import orjson
from django.conf import settings
from django.contrib.postgres.aggregates import ArrayAgg
from django.db import connection, transaction
from django.db.models import Q, StringAgg, Sum, Value

from runs.models import FINAL_STATUSES, PipelineDay, Run, RunStatus

DAY = timedelta(days=1)
_LOCK_KEY = 0x52554E5344415953  # "RUNSDAYS"


def day_of(instant: datetime) -> date:
    return instant.astimezone(UTC).date()


def start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def created_on(day: date) -> Q:
    """The runs created on ``day`` (UTC)."""
    return Q(created_at__gte=start_of(day), created_at__lt=start_of(day + DAY))


def _lock(*, shared: bool) -> bool:
    """Take the rollup's transaction-level lock (PostgreSQL): shared waits, exclusive only
    tries. True when held (and always on SQLite)."""
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        if shared:
            cursor.execute("SELECT pg_advisory_xact_lock_shared(%s)", [_LOCK_KEY])
            return True
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [_LOCK_KEY])
        return bool(cursor.fetchone()[0])


# ---------------------------------------------------------------------------------------------
# Build


@dataclass
class _Sums:
    complete: bool = True
    runs: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    durations: list[float] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)

    def add(self, status, started_at, finished_at, rows, size) -> None:
        self.runs += 1
        self.complete = self.complete and status in FINAL_STATUSES
        self.counts[status] = self.counts.get(status, 0) + 1
        if status != RunStatus.SUCCEEDED:
            return
        if started_at is not None and finished_at is not None:
            self.durations.append(max(0.0, (finished_at - started_at).total_seconds()))
        if rows is not None:
            self.rows.append(rows)
        if size is not None:
            self.sizes.append(size)

    def row(self, pipeline_pk: int, day: date, now: datetime) -> PipelineDay:
        return PipelineDay(
            pipeline_id=pipeline_pk,
            day=day,
            complete=self.complete,
            runs=self.runs,
            succeeded=self.counts.get(RunStatus.SUCCEEDED, 0),
            failed=self.counts.get(RunStatus.FAILED, 0),
            canceled=self.counts.get(RunStatus.CANCELED, 0),
            durations=_joined(self.durations) if self.complete else "",
            rows=_joined(self.rows) if self.complete else "",
            sizes=_joined(self.sizes) if self.complete else "",
            built_at=now,
        )


def _joined(values: list) -> str:
    """Sorted and comma-separated (``repr`` of a float reads back as the same float)."""
    return ",".join(map(repr, sorted(values)))


def _sums(condition: Q, days: set[date]) -> dict[tuple[int, date], _Sums]:
    sums: dict[tuple[int, date], _Sums] = {}
    runs = Run.objects.filter(condition).order_by()
    columns = ("pipeline_id", "created_at", "status", "started_at", "finished_at")
    for pipeline_pk, created_at, status, *values in runs.values_list(
        *columns, "rows_loaded", "bytes_loaded"
    ).iterator(chunk_size=5000):
        day = day_of(created_at)
        if day in days:
            sums.setdefault((pipeline_pk, day), _Sums()).add(status, *values)
    return sums


def last_closed_day(now: datetime) -> date:
    """The newest day a build may sum: closed for at least ``PIPELINE_DAY_GRACE`` seconds, so
    that no transaction that began while it was today is still writing to it."""
    return day_of(now - timedelta(seconds=settings.PIPELINE_DAY_GRACE)) - DAY


def build(*, now: datetime, max_days: int | None = None) -> int:
    """Sum the closed days not built yet (newest first, at most ``max_days``, by default
    ``PIPELINE_DAYS_PER_BUILD``) and every open row again; drop rows older than
    ``PIPELINE_DAYS_KEPT`` days. Answers how many rows it wrote or closed, days' marks
    included, not counting rows still open (0 when there was nothing more to do, or a writer
    held the lock: the next tick tries again)."""
    max_days = settings.PIPELINE_DAYS_PER_BUILD if max_days is None else max_days
    newest = last_closed_day(now)
    oldest = day_of(now) - timedelta(days=settings.PIPELINE_DAYS_KEPT)
    with transaction.atomic():
        if not _lock(shared=False):
            return 0
        PipelineDay.objects.filter(day__lt=oldest).delete()
        built = set(
            PipelineDay.objects.filter(pipeline__isnull=True, day__gte=oldest).values_list(
                "day", flat=True
            )
        )
        todo = [
            newest - timedelta(days=n)
            for n in range((newest - oldest).days + 1)
            if newest - timedelta(days=n) not in built
        ][:max_days]
        open_rows = list(
            PipelineDay.objects.filter(complete=False, pipeline__isnull=False).values_list(
                "pk", "pipeline_id", "day"
            )[: settings.PIPELINE_DAYS_OPEN_PER_BUILD]
        )
        written = 0
        if todo:
            PipelineDay.objects.filter(day__in=todo).delete()
            sums = _sums(
                Q(created_at__gte=start_of(min(todo)), created_at__lt=start_of(max(todo) + DAY)),
                set(todo),
            )
            rows = [item.row(pk, day, now) for (pk, day), item in sums.items()]
            rows += [PipelineDay(pipeline_id=None, day=day, built_at=now) for day in todo]
            PipelineDay.objects.bulk_create(rows, batch_size=500)
            written += len(rows)
        if open_rows:
            condition = Q()
            for _, pipeline_pk, day in open_rows:
                condition |= Q(pipeline_id=pipeline_pk) & created_on(day)
            sums = _sums(condition, {day for _, _, day in open_rows})
            PipelineDay.objects.filter(pk__in=[pk for pk, _, _ in open_rows]).delete()
            rows = [item.row(pk, day, now) for (pk, day), item in sums.items()]
            PipelineDay.objects.bulk_create(rows, batch_size=500)
            # A row still open is no progress: its day waits for its runs to be final.
            written += sum(1 for row in rows if row.complete) + len(open_rows) - len(rows)
        return written


# ---------------------------------------------------------------------------------------------
# Forget


def forget(pairs: Iterable[tuple[int, date]], *, now: datetime) -> None:
    """Mark the built rows of these (pipeline pk, day) pairs open, in the caller's
    transaction: readers count those days from the runs until the next build. Days not closed
    yet have no row and are skipped."""
    today = day_of(now)
    pairs = {(pk, day) for pk, day in pairs if day < today}
    if not pairs:
        return
    _lock(shared=True)
    condition = Q()
    for pipeline_pk, day in pairs:
        condition |= Q(pipeline_id=pipeline_pk, day=day)
    PipelineDay.objects.filter(condition, complete=True).update(complete=False)


def forget_runs(run_pks: Sequence[int], *, now: datetime) -> None:
    """``forget`` the days of these runs (before they are deleted)."""
    created = Run.objects.filter(pk__in=list(run_pks)).values_list("pipeline_id", "created_at")
    forget({(pk, day_of(at)) for pk, at in created}, now=now)


# ---------------------------------------------------------------------------------------------
# Read


@dataclass
class Built:
    """What the built rows give for a window: per pipeline, its summed counts and values; the
    days read from them (``days``, the same for every pipeline) and, per pipeline, the built
    days it still has open (to read from the runs)."""

    days: set[date] = field(default_factory=set)
    open_days: dict[int, set[date]] = field(default_factory=dict)
    counts: dict[int, dict[str, int]] = field(default_factory=dict)
    durations: dict[int, list[float]] = field(default_factory=dict)
    rows: dict[int, list[float]] = field(default_factory=dict)
    sizes: dict[int, list[float]] = field(default_factory=dict)


def full_days(start: datetime, end: datetime, *, now: datetime) -> tuple[date, date] | None:
    """The first and last closed day wholly inside ``[start, end]``; None when there is none."""
    first = day_of(start) if start == start_of(day_of(start)) else day_of(start) + DAY
    last = day_of(min(end, start_of(day_of(now)))) - DAY
    return (first, last) if first <= last else None


def _numbers(text: str | None) -> list[float]:
    """The comma-joined numbers of ``string_agg`` as one list."""
    return orjson.loads(f"[{text}]") if text else []


def read(pipeline_pks: Sequence[int], first: date, last: date, *, values_too: bool = True) -> Built:
    """The built rows of these pipelines between ``first`` and ``last``: one query (PostgreSQL;
    SQLite reads every window from the runs)."""
    built = Built()
    if connection.vendor != "postgresql" or not pipeline_pks:
        return built
    done = Q(complete=True)
    annotations = {
        "built": ArrayAgg("day", filter=done, default=[]),
        "open": ArrayAgg("day", filter=Q(complete=False), default=[]),
        "ok": Sum("succeeded", filter=done, default=0),
        "ko": Sum("failed", filter=done, default=0),
        "off": Sum("canceled", filter=done, default=0),
    }
    if values_too:
        for name in ("durations", "rows", "sizes"):
            annotations[f"{name}_text"] = StringAgg(
                name, delimiter=Value(","), filter=Q(complete=True) & ~Q(**{name: ""})
            )
    grouped = (
        PipelineDay.objects.filter(
            Q(pipeline_id__in=list(pipeline_pks)) | Q(pipeline__isnull=True),
            day__gte=first,
            day__lte=last,
        )
        .values("pipeline_id")
        .annotate(**annotations)
        .order_by()
    )
    rows = cast(Iterable[dict[str, Any]], grouped)  # the annotations' names are built above
    for row in rows:
        pk = row["pipeline_id"]
        if pk is None:
            built.days = set(row["built"])
            continue
        if row["open"]:
            built.open_days[pk] = set(row["open"])
        # A built row's runs are all final: these three are all of them.
        built.counts[pk] = {
            RunStatus.SUCCEEDED: row["ok"],
            RunStatus.FAILED: row["ko"],
            RunStatus.CANCELED: row["off"],
        }
        if values_too:
            built.durations[pk] = _numbers(row["durations_text"])
            built.rows[pk] = _numbers(row["rows_text"])
            built.sizes[pk] = _numbers(row["sizes_text"])
    return built


def unbuilt_spans(
    start: datetime, end: datetime, days: set[date]
) -> list[tuple[datetime, datetime, bool]]:
    """``[start, end]`` less the built ``days``, as (from, to, to_included) spans."""
    spans: list[tuple[datetime, datetime, bool]] = []
    cursor = start
    for day in sorted(days):
        lo, hi = start_of(day), start_of(day + DAY)
        if lo > cursor:
            spans.append((cursor, lo, False))
        cursor = max(cursor, hi)
    if cursor <= end:
        spans.append((cursor, end, True))
    return spans
