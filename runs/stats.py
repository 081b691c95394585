"""Judgement: per-pipeline baselines, out-of-baseline badges, ETAs and window figures.

Everything is computed on read. A pipeline's baseline is its newest ``BASELINE_RUNS`` succeeded
runs (at least ``BASELINE_MIN_RUNS``, else none); a run is judged against that baseline without
itself, so the slow run that is the newest succeeded one does not raise its own bar. The runs a
page needs come from ONE indexed query whatever the page holds: a lateral join on PostgreSQL
(one probe of the partial ``run_baseline_idx`` per pipeline), a window function on SQLite.
Percentiles interpolate linearly between the nearest ranks, as PostgreSQL's ``percentile_cont``.
Window figures (``window_stats``) read closed days from their summed rows (``runs.rollup``) and
only the rest of the window from the runs.

A pipeline's newest runs are found by their ids alone, an index-only scan of
``(pipeline, created_at, id)``, and only then read. The pipeline is matched as a one-value range
(``BETWEEN p AND p``) and the order starts with it, so that only the indexes that lead with the
pipeline can give that order: with ``pipeline_id = p`` PostgreSQL takes the pipeline for a
constant, and on a table that is not all-visible (index-only scans then look dear) it may walk
the ``(created_at, id)`` index backwards filtering on the pipeline, which reads the whole history
for a pipeline with no (or only old) succeeded runs: ~0.4 s per such pipeline at 1M runs, 78 s
for the 200 pipelines of ``/pipelines/`` (measured; see ``selectors.of_pipeline_newest_first``).
"""

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import (
    Count,
    DurationField,
    ExpressionWrapper,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
)
from django.utils import timezone

from common.sql import statement_cursor
from pipelines.models import Pipeline
from runs import rollup
from runs.models import FINAL_STATUSES, Run, RunNode, RunStatus
from runs.selectors import of_pipeline_newest_first

STREAK_LOOKBACK = 10


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """PostgreSQL's ``percentile_cont``: linear interpolation between the closest ranks."""
    return percentile_of_sorted(sorted(values), fraction)


def percentile_of_sorted(ordered: Sequence[float], fraction: float) -> float | None:
    if not ordered:
        return None
    position = (len(ordered) - 1) * fraction
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(values: Sequence[float]) -> float | None:
    return percentile(values, 0.5)


# ---------------------------------------------------------------------------------------------
# Baselines


@dataclass(frozen=True)
class BaselineRun:
    pk: int
    duration: float | None
    rows: int | None
    bytes: int | None


@dataclass(frozen=True)
class Baseline:
    runs: tuple[BaselineRun, ...]
    duration_p50: float | None
    duration_p90: float | None
    rows_median: float | None
    bytes_median: float | None
    node_duration_medians: dict[str, float] = field(default_factory=dict)

    @property
    def sample_size(self) -> int:
        return len(self.runs)

    # The thresholds (settings) in one place: the badges, the judgement of the newest runs and
    # the SQL condition of the "out of baseline" filter all ask these.

    @property
    def slow_above(self) -> float | None:
        """Seconds past which a run is slower than usual."""
        return settings.BASELINE_SLOW_FACTOR * self.duration_p90 if self.duration_p90 else None

    @property
    def fast_below(self) -> float | None:
        """Seconds under which a run is faster than usual."""
        return settings.BASELINE_FAST_FACTOR * self.duration_p50 if self.duration_p50 else None

    def duration_verdict(self, seconds: float | None) -> str | None:
        """``slower``, ``faster`` or None (usual, or nothing to compare)."""
        if seconds is None:
            return None
        if self.slow_above is not None and seconds > self.slow_above:
            return "slower"
        if self.fast_below is not None and seconds < self.fast_below:
            return "faster"
        return None

    @staticmethod
    def volume_bounds(usual: float) -> tuple[float, float]:
        """The usual range of rows or bytes around a median."""
        return settings.BASELINE_VOLUME_LOW * usual, settings.BASELINE_VOLUME_HIGH * usual

    @classmethod
    def volume_verdict(cls, value: float | None, usual: float | None) -> str | None:
        """``low``, ``high`` or None (usual, or nothing to compare)."""
        if value is None or not usual:
            return None
        low, high = cls.volume_bounds(usual)
        return "low" if value < low else "high" if value > high else None

    @classmethod
    def of(cls, runs: Sequence[BaselineRun]) -> "Baseline | None":
        runs = tuple(runs[: settings.BASELINE_RUNS])
        if len(runs) < settings.BASELINE_MIN_RUNS:
            return None
        durations = [run.duration for run in runs if run.duration is not None]
        rows = [run.rows for run in runs if run.rows is not None]
        sizes = [run.bytes for run in runs if run.bytes is not None]
        return cls(
            runs=runs,
            duration_p50=percentile(durations, 0.5),
            duration_p90=percentile(durations, 0.9),
            rows_median=median(rows),
            bytes_median=median(sizes),
        )


def _duration_sql() -> str:
    if connection.vendor == "postgresql":
        return "EXTRACT(EPOCH FROM (r.finished_at - r.started_at))::float8"
    return "(julianday(finished_at) - julianday(started_at)) * 86400.0"


def recent_succeeded(pipeline_pks: Iterable[int]) -> dict[int, list[BaselineRun]]:
    """The newest ``BASELINE_RUNS + 1`` succeeded runs of each pipeline, newest first (one more
    than a baseline holds, so that any of them can be judged against the others)."""
    pks = sorted(set(pipeline_pks))
    if not pks:
        return {}
    limit = settings.BASELINE_RUNS + 1
    duration = _duration_sql()
    with statement_cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"SELECT p.pk, r.id, {duration} AS dur, r.rows_loaded, r.bytes_loaded "  # noqa: S608
                "FROM unnest(%s::bigint[]) AS p(pk) CROSS JOIN LATERAL ("
                "SELECT id, created_at FROM runs_run WHERE pipeline_id BETWEEN p.pk AND p.pk "
                "AND status = 'succeeded' "
                "ORDER BY pipeline_id DESC, created_at DESC, id DESC LIMIT %s) AS b "
                "JOIN runs_run r ON r.id = b.id "
                "ORDER BY p.pk, b.created_at DESC, b.id DESC",
                [pks, limit],
            )
        else:
            marks = ", ".join(["%s"] * len(pks))
            cursor.execute(
                "SELECT pipeline_id, id, dur, rows_loaded, bytes_loaded FROM ("  # noqa: S608
                f"SELECT pipeline_id, id, {duration} AS dur, rows_loaded, bytes_loaded, "
                "ROW_NUMBER() OVER (PARTITION BY pipeline_id ORDER BY created_at DESC, id DESC) "
                f"AS rn FROM runs_run WHERE status = 'succeeded' AND pipeline_id IN ({marks})"
                ") WHERE rn <= %s ORDER BY pipeline_id, rn",
                [*pks, limit],
            )
        rows = cursor.fetchall()
    by_pipeline: dict[int, list[BaselineRun]] = defaultdict(list)
    for pipeline_pk, pk, dur, rows_loaded, bytes_loaded in rows:
        by_pipeline[pipeline_pk].append(
            BaselineRun(
                pk=pk,
                # To the millisecond: SQLite's julianday() arithmetic is off by microseconds.
                duration=None if dur is None else max(0.0, round(float(dur), 3)),
                rows=rows_loaded,
                bytes=bytes_loaded,
            )
        )
    return dict(by_pipeline)


def baseline_excluding(recent: Sequence[BaselineRun], run_pk: int | None) -> Baseline | None:
    return Baseline.of([item for item in recent if item.pk != run_pk])


def with_node_medians(baseline: Baseline | None) -> Baseline | None:
    """The baseline with each node's median duration over its runs (one query)."""
    if baseline is None:
        return None
    durations: dict[str, list[float]] = defaultdict(list)
    nodes = RunNode.objects.filter(
        run_id__in=[item.pk for item in baseline.runs],
        started_at__isnull=False,
        finished_at__isnull=False,
    ).values_list("node_id", "started_at", "finished_at")
    for node_id, started, finished in nodes:
        durations[node_id].append(max(0.0, (finished - started).total_seconds()))
    medians = {node_id: median(values) for node_id, values in sorted(durations.items())}
    return Baseline(
        runs=baseline.runs,
        duration_p50=baseline.duration_p50,
        duration_p90=baseline.duration_p90,
        rows_median=baseline.rows_median,
        bytes_median=baseline.bytes_median,
        node_duration_medians=medians,
    )


def pipeline_baseline(*, pipeline_pk: int) -> Baseline | None:
    """A pipeline's current baseline, with its nodes' medians."""
    recent = recent_succeeded([pipeline_pk]).get(pipeline_pk, [])
    return with_node_medians(Baseline.of(recent))


# ---------------------------------------------------------------------------------------------
# Judging runs


@dataclass(frozen=True)
class Badge:
    kind: str  # slower, faster, rows, bytes, streak
    text: str
    title: str


@dataclass(frozen=True)
class Eta:
    at: datetime
    basis: str  # "progress" or "baseline"

    def seconds_left(self, now: datetime) -> float:
        return (self.at - now).total_seconds()


@dataclass(frozen=True)
class Judgement:
    baseline: Baseline | None
    duration_ratio: float | None = None
    rows_ratio: float | None = None
    bytes_ratio: float | None = None
    failure_streak: int = 0
    eta: Eta | None = None
    badges: tuple[Badge, ...] = ()

    @property
    def is_out_of_baseline(self) -> bool:
        return bool(self.badges)


def _seconds(run: Run) -> float | None:
    if run.started_at is None:
        return None
    end = run.finished_at if run.is_final else timezone.now()
    if end is None:
        return None
    return max(0.0, (end - run.started_at).total_seconds())


def _ratio(value: float | None, usual: float | None) -> float | None:
    if value is None or not usual:
        return None
    return value / usual


def _volume_badge(kind: str, value: int | None, usual: float | None) -> Badge | None:
    verdict = Baseline.volume_verdict(value, usual)
    if verdict is None or value is None or not usual:
        return None
    ratio = value / usual
    text = f"{kind} -{round((1 - ratio) * 100)}%" if verdict == "low" else f"{kind} +{ratio:.1f}x"
    return Badge(kind, text, f"Usually {usual:,.0f} {kind} (median of the baseline)")


def eta_for(run: Run, baseline: Baseline | None, *, now: datetime) -> Eta | None:
    """When a running run should finish: from its progress rate so far when it reports one,
    else from the baseline's median duration."""
    if run.status != RunStatus.RUNNING:
        return None
    return _eta(run.started_at, run.progress, baseline, now=now)


def _eta(
    started_at: datetime | None, progress: int | None, baseline: Baseline | None, *, now: datetime
) -> Eta | None:
    if started_at is None:
        return None
    elapsed = max(0.0, (now - started_at).total_seconds())
    if progress is not None and 0 < progress < 100 and elapsed > 0:
        total = elapsed * 100.0 / progress
        return Eta(at=started_at + timedelta(seconds=total), basis="progress")
    if baseline is not None and baseline.duration_p50 is not None:
        return Eta(at=started_at + timedelta(seconds=baseline.duration_p50), basis="baseline")
    return None


@dataclass(frozen=True)
class Running:
    """What a running run's ETA is computed from, as a list reads it."""

    pk: int
    pipeline_pk: int
    started_at: datetime | None
    progress: int | None


def running_etas(runs: Sequence[Running], *, now: datetime | None = None) -> dict[int, Eta | None]:
    """``{pk: eta}`` for running runs, as ``judge_runs`` gives them without the rest of the
    judgement: one query whatever the page holds."""
    now = now or timezone.now()
    baselines = _PageBaselines(recent_succeeded(run.pipeline_pk for run in runs))
    return {
        run.pk: _eta(run.started_at, run.progress, baselines.of(run.pipeline_pk, run.pk), now=now)
        for run in runs
    }


class _PageBaselines:
    """The baselines of a page's runs from their pipelines' recent succeeded runs: one per
    pipeline, and one without the run for a run among them."""

    def __init__(self, recent: dict[int, list[BaselineRun]]):
        self.recent = recent
        self.whole: dict[int, Baseline | None] = {}

    def of(self, pipeline_pk: int, run_pk: int) -> Baseline | None:
        items = self.recent.get(pipeline_pk, [])
        if any(item.pk == run_pk for item in items):
            return baseline_excluding(items, run_pk)
        if pipeline_pk not in self.whole:
            self.whole[pipeline_pk] = Baseline.of(items)
        return self.whole[pipeline_pk]


def judge(
    run: Run, baseline: Baseline | None, *, failure_streak: int = 0, now: datetime | None = None
) -> Judgement:
    now = now or timezone.now()
    seconds = _seconds(run)
    duration_ratio = rows_ratio = bytes_ratio = None
    badges: list[Badge] = []
    if baseline is not None:
        duration_ratio = _ratio(seconds, baseline.duration_p50)
        rows_ratio = _ratio(run.rows_loaded, baseline.rows_median)
        bytes_ratio = _ratio(run.bytes_loaded, baseline.bytes_median)
    if baseline is not None and run.status == RunStatus.SUCCEEDED:
        p50, p90 = baseline.duration_p50, baseline.duration_p90
        usual = f"Usually {p50:.0f}s (p50), {p90:.0f}s at most 9 runs in 10 (p90)" if p50 else ""
        verdict = baseline.duration_verdict(seconds)
        if verdict == "slower":
            badges.append(Badge("slower", f"{duration_ratio:.1f}x slower than usual", usual))
        elif verdict == "faster" and seconds is not None and p50:
            faster = p50 / seconds if seconds else math.inf
            text = f"{faster:.1f}x faster than usual" if seconds else "finished at once"
            badges.append(Badge("faster", text, usual))
        for kind, value, usual_volume in (
            ("rows", run.rows_loaded, baseline.rows_median),
            ("bytes", run.bytes_loaded, baseline.bytes_median),
        ):
            badge = _volume_badge(kind, value, usual_volume)
            if badge:
                badges.append(badge)
    if run.status == RunStatus.FAILED and failure_streak >= settings.BASELINE_FAILURE_STREAK:
        count = f"{failure_streak}+" if failure_streak >= STREAK_LOOKBACK else str(failure_streak)
        badges.append(
            Badge(
                "streak",
                f"failed {count} times in a row",
                "Consecutive failed runs of this pipeline, this one included",
            )
        )
    return Judgement(
        baseline=baseline,
        duration_ratio=duration_ratio,
        rows_ratio=rows_ratio,
        bytes_ratio=bytes_ratio,
        failure_streak=failure_streak,
        eta=eta_for(run, baseline, now=now),
        badges=tuple(badges),
    )


def _decided_up_to(anchors: Sequence[tuple[int, datetime, int]]) -> list[list[tuple[str, int]]]:
    """For each (pipeline pk, created_at, run pk) anchor, the statuses and pks of the decided
    runs (succeeded or failed) among the pipeline's newest ``STREAK_LOOKBACK`` runs up to and
    including it, newest first. One query."""
    if not anchors:
        return []
    decided: dict[int, list[tuple[str, int]]] = defaultdict(list)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT a.n, r.status, r.id FROM "
                "unnest(%s::bigint[], %s::timestamptz[], %s::bigint[]) "
                "WITH ORDINALITY AS a(pk, at, rid, n) CROSS JOIN LATERAL ("
                "SELECT created_at, id FROM runs_run WHERE pipeline_id BETWEEN a.pk AND a.pk "
                "AND (created_at, id) <= (a.at, a.rid) "
                "ORDER BY pipeline_id DESC, created_at DESC, id DESC LIMIT %s) AS b "
                "JOIN runs_run r ON r.id = b.id "
                "ORDER BY a.n, b.created_at DESC, b.id DESC",
                [
                    [pk for pk, _, _ in anchors],
                    [at for _, at, _ in anchors],
                    [rid for _, _, rid in anchors],
                    STREAK_LOOKBACK,
                ],
            )
            rows = [(n - 1, status, pk) for n, status, pk in cursor.fetchall()]
        else:
            branch = (
                "SELECT * FROM (SELECT %s AS n, status, id FROM runs_run WHERE pipeline_id = %s "
                "AND (created_at, id) <= (%s, %s) "
                "ORDER BY created_at DESC, id DESC LIMIT %s)"
            )
            params: list[Any] = []
            for index, (pk, at, rid) in enumerate(anchors):
                at_value = connection.ops.adapt_datetimefield_value(at)
                params += [index, pk, at_value, rid, STREAK_LOOKBACK]
            cursor.execute(" UNION ALL ".join([branch] * len(anchors)), params)
            rows = cursor.fetchall()
    for index, status, pk in rows:
        if status in (RunStatus.SUCCEEDED, RunStatus.FAILED):
            decided[index].append((status, pk))
    return [decided.get(index, []) for index in range(len(anchors))]


def _streak(decided: Sequence[tuple[str, int]]) -> int:
    count = 0
    for status, _ in decided:
        if status != RunStatus.FAILED:
            break
        count += 1
    return count


def failure_streaks(anchors: Sequence[tuple[int, datetime, int]]) -> list[int]:
    """For each anchor, how many decided runs up to and including it failed in a row (at most
    ``STREAK_LOOKBACK``). One query."""
    return [_streak(decided) for decided in _decided_up_to(anchors)]


def judge_runs(runs: Sequence[Run], *, now: datetime | None = None) -> dict[int, Judgement]:
    """``{run.pk: Judgement}`` for a page of runs: two queries whatever the page holds (the
    pipelines' recent succeeded runs, and the failure streaks of its failed runs)."""
    now = now or timezone.now()
    baselines = _PageBaselines(recent_succeeded(run.pipeline_id for run in runs))
    failed = [run for run in runs if run.status == RunStatus.FAILED]
    streaks = dict(
        zip(
            (run.pk for run in failed),
            failure_streaks([(run.pipeline_id, run.created_at, run.pk) for run in failed]),
            strict=True,
        )
    )
    return {
        run.pk: judge(
            run,
            baselines.of(run.pipeline_id, run.pk),
            failure_streak=streaks.get(run.pk, 0),
            now=now,
        )
        for run in runs
    }


def judge_run(run: Run, *, now: datetime | None = None) -> Judgement:
    """One run's judgement, its baseline with the nodes' medians."""
    recent = recent_succeeded([run.pipeline_id]).get(run.pipeline_id, [])
    baseline = with_node_medians(baseline_excluding(recent, run.pk))
    streak = 0
    if run.status == RunStatus.FAILED:
        streak = failure_streaks([(run.pipeline_id, run.created_at, run.pk)])[0]
    return judge(run, baseline, failure_streak=streak, now=now)


def out_of_baseline(queryset: QuerySet[Run], condition: Q | None = None) -> QuerySet[Run]:
    """The runs of ``queryset`` that carry a badge; ``condition`` is a ``out_of_baseline_q()``
    computed earlier (two queries), to apply it to several querysets for the price of one."""
    duration = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
    condition = out_of_baseline_q() if condition is None else condition
    return queryset.alias(judged_duration=duration).filter(condition)


def out_of_baseline_q() -> Q:
    """The condition of badged runs, as a filter the keyset pages can use (two queries); it
    needs the ``judged_duration`` alias that ``out_of_baseline`` adds.

    Older succeeded runs are compared in SQL with their pipeline's baseline; the newest ones,
    which are part of that baseline, are judged here against the others (as their badges are).
    Failed runs count when they extend their pipeline's current failure streak past the
    threshold.
    """
    pipeline_pks = list(Pipeline.objects.values_list("pk", flat=True))
    recent = recent_succeeded(pipeline_pks)
    now = timezone.now() + timedelta(days=1)
    streak_ids = _current_streak_run_ids(pipeline_pks, now)
    condition = Q(pk__in=streak_ids) if streak_ids else Q(pk__in=[])
    judged_out: list[int] = []
    for pipeline_pk, items in recent.items():
        for item in items:
            if _is_out(item, baseline_excluding(items, item.pk)):
                judged_out.append(item.pk)
        baseline = Baseline.of(items)
        if baseline is None:
            continue
        outside = Q()
        if baseline.slow_above is not None:
            outside |= Q(judged_duration__gt=timedelta(seconds=baseline.slow_above))
        if baseline.fast_below is not None:
            outside |= Q(judged_duration__lt=timedelta(seconds=baseline.fast_below))
        for column, usual in (
            ("rows_loaded", baseline.rows_median),
            ("bytes_loaded", baseline.bytes_median),
        ):
            if usual:
                low, high = Baseline.volume_bounds(usual)
                outside |= Q(**{f"{column}__lt": low}) | Q(**{f"{column}__gt": high})
        if outside:
            condition |= (
                Q(pipeline_id=pipeline_pk, status=RunStatus.SUCCEEDED)
                & ~Q(pk__in=[item.pk for item in items])
                & outside
            )
    if judged_out:
        condition |= Q(pk__in=judged_out)
    return condition


def _is_out(item: BaselineRun, baseline: Baseline | None) -> bool:
    if baseline is None:
        return False
    return bool(
        baseline.duration_verdict(item.duration)
        or baseline.volume_verdict(item.rows, baseline.rows_median)
        or baseline.volume_verdict(item.bytes, baseline.bytes_median)
    )


def _current_streak_run_ids(pipeline_pks: Sequence[int], now: datetime) -> list[int]:
    """Failed runs that are the third (by default) or later of their pipeline's current streak."""
    threshold = settings.BASELINE_FAILURE_STREAK
    ids: list[int] = []
    for decided in _decided_up_to([(pk, now, 2**62) for pk in pipeline_pks]):
        streak = _streak(decided)
        if streak >= threshold:
            ids += [pk for _, pk in decided[: streak - threshold + 1]]
    return ids


# ---------------------------------------------------------------------------------------------
# Pipeline figures over a window

STATS_WINDOWS = {"7d": timedelta(days=7), "30d": timedelta(days=30)}
DEFAULT_STATS_WINDOW = "30d"


@dataclass
class WindowStats:
    window: str
    runs: int = 0
    succeeded: int = 0
    failed: int = 0
    canceled: int = 0
    duration_p50: float | None = None
    duration_p90: float | None = None
    rows_median: float | None = None
    bytes_median: float | None = None
    last_run: "LastRun | None" = None

    def count(self, status: str, runs: int) -> None:
        """Add ``runs`` runs of ``status`` (the total, and the final statuses' own counts)."""
        self.runs += runs
        if status in FINAL_STATUSES:
            setattr(self, status, getattr(self, status) + runs)

    @property
    def success_rate(self) -> float | None:
        """Succeeded over decided (succeeded or failed) runs, as on the Runs page's strip."""
        decided = self.succeeded + self.failed
        return None if not decided else self.succeeded / decided


@dataclass(frozen=True)
class LastRun:
    public_id: str
    status: str
    created_at: datetime
    finished_at: datetime | None


def _duration_expression() -> ExpressionWrapper:
    return ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())


def window_stats(
    *,
    pipeline_pks: Sequence[int],
    window: str,
    now: datetime | None = None,
    start: datetime | None = None,
    figures_too: bool = True,
) -> dict[int, WindowStats]:
    """Counts by status and (unless ``figures_too`` is false) duration p50/p90 and rows/bytes
    medians of the succeeded runs created in the window, per pipeline: two queries whatever the
    number of pipelines, the built days (``runs.rollup``) and the rest of the window from the
    runs. ``window`` names one of ``STATS_WINDOWS`` unless ``start`` is given; ``now`` is the
    window's end."""
    end = now or timezone.now()
    start = start or end - STATS_WINDOWS[window]
    pks = list(pipeline_pks)
    stats = {pk: WindowStats(window=window) for pk in pks}
    days = rollup.full_days(start, end, now=timezone.now())
    built = rollup.read(pks, *days, values_too=figures_too) if days else rollup.Built()
    values: dict[int, tuple[list[float], list[float], list[float]]] = {
        pk: (built.durations.get(pk, []), built.rows.get(pk, []), built.sizes.get(pk, []))
        for pk in pks
    }
    for pk, counts in built.counts.items():
        for status, runs in counts.items():
            stats[pk].count(status, runs)

    spans = Q()
    for lo, hi, hi_included in rollup.unbuilt_spans(start, end, built.days):
        spans |= Q(
            created_at__gte=lo, **{"created_at__lte" if hi_included else "created_at__lt": hi}
        )
    rest = Q(pipeline_id__in=pks) & spans
    for pk, open_days in built.open_days.items():
        for day in open_days & built.days:
            rest |= Q(pipeline_id=pk) & rollup.created_on(day)
    live = Run.objects.filter(rest).order_by()
    if not figures_too:
        for row in live.values("pipeline_id", "status").annotate(n=Count("id")):
            stats[row["pipeline_id"]].count(row["status"], row["n"])
        return stats
    rows = live.annotate(judged_duration=_duration_expression()).values_list(
        "pipeline_id", "status", "judged_duration", "rows_loaded", "bytes_loaded"
    )
    for pk, status, duration, rows_loaded, size in rows:
        stats[pk].count(status, 1)
        if status != RunStatus.SUCCEEDED:
            continue
        durations, loaded, sizes = values[pk]
        if duration is not None:
            durations.append(max(0.0, duration.total_seconds()))
        if rows_loaded is not None:
            loaded.append(rows_loaded)
        if size is not None:
            sizes.append(size)
    for pk, (durations, loaded, sizes) in values.items():
        item = stats[pk]
        ordered = sorted(durations)
        item.duration_p50 = percentile_of_sorted(ordered, 0.5)
        item.duration_p90 = percentile_of_sorted(ordered, 0.9)
        item.rows_median = percentile_of_sorted(sorted(loaded), 0.5)
        item.bytes_median = percentile_of_sorted(sorted(sizes), 0.5)
    return stats


def last_runs(*, pipeline_pks: Sequence[int]) -> dict[int, LastRun]:
    """Each pipeline's newest run: two queries, an index-only probe of (pipeline, created_at,
    id) per pipeline, then the runs by primary key."""
    newest = of_pipeline_newest_first(Run.objects.all(), OuterRef("pk"))
    last_pks = (
        Pipeline.objects.filter(pk__in=list(pipeline_pks))
        .annotate(last_pk=Subquery(newest.values("pk")[:1]))
        .filter(last_pk__isnull=False)
        .values_list("last_pk", flat=True)
    )
    rows = Run.objects.filter(pk__in=list(last_pks)).values_list(
        "pipeline_id", "public_id", "status", "created_at", "finished_at"
    )
    return {
        pk: LastRun(public_id=public_id, status=status, created_at=created, finished_at=finished)
        for pk, public_id, status, created, finished in rows
    }


def pipeline_stats(*, pipeline: Pipeline, window: str) -> WindowStats:
    """One pipeline's figures over the window, with ``last_run`` set (its newest run)."""
    item = window_stats(pipeline_pks=[pipeline.pk], window=window)[pipeline.pk]
    item.last_run = last_runs(pipeline_pks=[pipeline.pk]).get(pipeline.pk)
    return item
