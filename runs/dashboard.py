"""The dashboard strip above the Runs table: counts, volumes, median duration and a histogram.

Everything is aggregated over one time window only (the filters' own window, or the last 24
hours when none is chosen), so the (…, created_at, id) indexes bound the rows read whatever the
size of the history. Counts per status, volumes and the histogram come from one GROUP BY.

``runs_board(filterset)`` is the selector the page (and ``bench/``) calls: it takes the run
filters, chooses the window and its words, and keeps the strip of a long window in the cache
for a few seconds so that paging and live refreshes do not recount it.
"""

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.core.cache import cache
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

from runs.filters import WINDOW_LABELS, RunFilter
from runs.models import ACTIVE_STATUSES, Run, RunStatus

DEFAULT_WINDOW = timedelta(hours=24)
# A strip over a longer window than this may come from the cache (tens of thousands of runs on a
# busy install); a shorter one is always counted afresh.
LIVE_SPAN = timedelta(days=8)
CACHE_SECONDS = 20
# The filters that set explicit bounds (a rolling ``window`` alone has words of its own).
BOUNDS = ("dateRange", "from", "to")
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


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime
    label: str
    is_default: bool
    ends_now: bool


def board_window(filterset: RunFilter, *, now: datetime) -> Window:
    """The strip's window: the filters' time bounds, or the last 24 hours when they set no lower
    bound; its words for a rolling window ("Last 7 days"), blank for an explicit range (which
    the page writes out from its bounds in the viewer's zone)."""
    start, end = filterset.time_bounds(now)
    cleaned = filterset.form.cleaned_data
    is_default = start is None
    if is_default:
        label = "Last 24 hours"
    elif cleaned.get("window") and not any(cleaned.get(key) for key in BOUNDS):
        label = WINDOW_LABELS[cleaned["window"]]
    else:
        label = ""
    return Window(
        start=start or now - DEFAULT_WINDOW,
        end=end,
        label=label,
        is_default=is_default,
        ends_now=now - end < timedelta(minutes=1),
    )


def running_now(filterset: RunFilter, *, now: datetime | None = None) -> int:
    """The active runs the filters match, counted afresh (never from the cache): within a past
    window only those still active, otherwise all of them."""
    window = board_window(filterset, now=now or timezone.now())
    windowed = None
    if not window.ends_now:
        windowed = filterset.qs.filter(created_at__gte=window.start, created_at__lt=window.end)
    return running_count(unwindowed=filterset.without_time(Run.objects.all()), windowed=windowed)


def _cache_key(filterset: RunFilter) -> str:
    data = filterset.data
    params = sorted(
        (name, data.getlist(name) if hasattr(data, "getlist") else data.get(name))
        for name in filterset.filters
        if name in data
    )
    return "runs:dashboard:" + hashlib.sha256(repr(params).encode()).hexdigest()


def runs_board(
    filterset: RunFilter, *, now: datetime | None = None, cached: bool = True
) -> Dashboard:
    """The strip for a valid ``filterset``."""
    window = board_window(filterset, now=now or timezone.now())
    long_window = window.end - window.start > LIVE_SPAN
    key = _cache_key(filterset) if cached and long_window else None
    board = cache.get(key) if key else None
    if board is None:
        board = dashboard_summary(
            windowed=filterset.qs.filter(created_at__gte=window.start, created_at__lt=window.end),
            unwindowed=filterset.without_time(Run.objects.all()),
            start=window.start,
            end=window.end,
            label=window.label,
            is_default_window=window.is_default,
            ends_now=window.ends_now,
        )
        if key:
            cache.set(key, board, CACHE_SECONDS)
    return board


def may_be_cached(board: Dashboard) -> bool:
    """Whether ``runs_board`` may have answered ``board`` from the cache."""
    return board.end - board.start > LIVE_SPAN
