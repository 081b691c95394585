"""The dashboard strip above the Runs table: counts, volumes, median duration and a histogram.

Everything is aggregated over one time window only (the filters' own window, or the last 24
hours when none is chosen), so the (…, created_at, id) indexes bound the rows read whatever the
size of the history. Counts per status, volumes and the histogram come from one GROUP BY.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import connection
from django.db.models import (
    Aggregate,
    Count,
    DurationField,
    ExpressionWrapper,
    F,
    QuerySet,
    Sum,
)
from django.db.models.functions import TruncDay, TruncHour
from django.utils import timezone

from runs.models import ACTIVE_STATUSES, Run, RunStatus

DEFAULT_WINDOW = timedelta(hours=24)
# The median is taken over the newest finished runs of the window, so its cost is bounded
# whatever the window holds; below this many runs it is exact.
MEDIAN_SAMPLE = 2000
HISTOGRAM_STATUSES = (
    RunStatus.SUCCEEDED,
    RunStatus.FAILED,
    RunStatus.CANCELED,
    RunStatus.RUNNING,
    RunStatus.QUEUED,
)


class _Median(Aggregate):
    """PostgreSQL's exact median; other databases take the middle row instead."""

    function = "PERCENTILE_CONT"
    template = "%(function)s(0.5) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = DurationField()


@dataclass
class Bar:
    start: datetime
    counts: dict[str, int]
    total: int = 0

    @property
    def segments(self) -> list[tuple[str, int]]:
        return [(status, self.counts.get(status, 0)) for status in HISTOGRAM_STATUSES]


@dataclass
class Dashboard:
    start: datetime
    end: datetime
    label: str
    is_default_window: bool
    # True when the window reaches the present: "running now" then counts every active run the
    # filters match; for a window in the past it counts its runs that are still active.
    ends_now: bool = True
    running_now: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    rows_loaded: int = 0
    bytes_loaded: int = 0
    median_duration: timedelta | None = None
    bars: list[Bar] = field(default_factory=list)
    bar_width: timedelta = timedelta(hours=1)

    @property
    def total(self) -> int:
        return sum(self.by_status.values())

    @property
    def finished(self) -> int:
        return sum(
            self.by_status.get(status, 0)
            for status in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELED)
        )

    @property
    def success_rate(self) -> float | None:
        decided = self.by_status.get(RunStatus.SUCCEEDED, 0) + self.by_status.get(
            RunStatus.FAILED, 0
        )
        if not decided:
            return None
        return 100.0 * self.by_status.get(RunStatus.SUCCEEDED, 0) / decided

    @property
    def max_bar(self) -> int:
        return max((bar.total for bar in self.bars), default=0)


def _bar_width(span: timedelta) -> timedelta:
    for width in (
        timedelta(hours=1),
        timedelta(hours=3),
        timedelta(hours=6),
        timedelta(hours=12),
        timedelta(days=1),
        timedelta(days=7),
    ):
        if span / width <= 48:
            return width
    return timedelta(days=30)


def dashboard_summary(
    *,
    windowed: QuerySet[Run],
    unwindowed: QuerySet[Run],
    start: datetime,
    end: datetime,
    label: str,
    is_default_window: bool,
    ends_now: bool = True,
) -> Dashboard:
    """Aggregate ``windowed`` (the filtered runs of the window); ``unwindowed`` (the same filters
    without the time bounds) only answers "running now", through the active-runs index."""
    board = Dashboard(
        start=start,
        end=end,
        label=label,
        is_default_window=is_default_window,
        ends_now=ends_now,
    )
    span = max(end - start, timedelta(hours=1))
    board.bar_width = width = _bar_width(span)
    trunc = TruncHour if width < timedelta(days=1) else TruncDay
    grouped = (
        windowed.order_by()
        .annotate(bucket=trunc("created_at"))
        .values("bucket", "status")
        .annotate(n=Count("id"), rows=Sum("rows_loaded"), size=Sum("bytes_loaded"))
    )
    # Bars start on a whole hour (or day) so that every truncated bucket falls inside one bar.
    origin = start.replace(minute=0, second=0, microsecond=0)
    if trunc is TruncDay:
        origin = origin.replace(hour=0)
    bar_count = max(1, -(-(end - origin) // width))
    bars = [Bar(start=origin + width * index, counts={}) for index in range(bar_count)]
    for row in grouped:
        status, n = row["status"], row["n"]
        board.by_status[status] = board.by_status.get(status, 0) + n
        board.rows_loaded += row["rows"] or 0
        board.bytes_loaded += row["size"] or 0
        bucket = row["bucket"]
        if bucket is None:
            continue
        if timezone.is_naive(bucket):
            bucket = timezone.make_aware(bucket, timezone.UTC)
        index = max(0, min(bar_count - 1, int((bucket - origin) / width)))
        bar = bars[index]
        bar.counts[status] = bar.counts.get(status, 0) + n
        bar.total += n
    board.bars = bars
    board.running_now = running_count(
        unwindowed=unwindowed, windowed=None if ends_now else windowed
    )
    board.median_duration = _median_duration(windowed)
    return board


def running_count(*, unwindowed: QuerySet[Run], windowed: QuerySet[Run] | None) -> int:
    """Active runs: all that the filters match (``windowed`` None: the window reaches now), or
    only those of a past window that are still active. Served by the active-runs index."""
    queryset = unwindowed if windowed is None else windowed
    return queryset.order_by().filter(status__in=ACTIVE_STATUSES).count()


def _median_duration(windowed: QuerySet[Run]) -> timedelta | None:
    duration = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
    newest = (
        windowed.filter(started_at__isnull=False, finished_at__isnull=False)
        .annotate(duration=duration)
        .order_by("-created_at", "-id")[:MEDIAN_SAMPLE]
    )
    if connection.vendor == "postgresql":
        return newest.aggregate(median=_Median("duration"))["median"]
    # SQLite has no percentile aggregate: sort the sample's durations and take the middle one.
    durations = sorted(newest.values_list("duration", flat=True))
    return durations[len(durations) // 2] if durations else None
