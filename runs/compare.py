"""Run-to-run comparison: two runs side by side, node by node, with their telemetry curves."""

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db.models import Q

from runs.models import LogLevel, LogLine, Run, RunNode, RunStatus, TelemetrySample
from runs.selectors import of_pipeline_newest_first, run_queryset
from runs.timeline import node_rows

CURVE_POINTS = 120
CURVE_KEY = "rowsLoaded"
SLOWER_FACTOR = 2.0


@dataclass(frozen=True)
class NodeSide:
    status: str
    duration: float | None
    rows: int | float | None


@dataclass(frozen=True)
class NodeRow:
    node_id: str
    run: NodeSide | None
    other: NodeSide | None
    duration_ratio: float | None

    @property
    def change(self) -> str | None:
        """``new`` (only in the run), ``missing`` (only in the other), ``slower`` (at least
        twice the other's duration), ``faster`` (at most half), else None."""
        if self.other is None:
            return "new"
        if self.run is None:
            return "missing"
        if self.duration_ratio is not None and self.duration_ratio >= SLOWER_FACTOR:
            return "slower"
        if self.duration_ratio is not None and self.duration_ratio <= 1 / SLOWER_FACTOR:
            return "faster"
        return None


@dataclass(frozen=True)
class Side:
    run: Run
    duration: float | None
    first_error: str | None
    curve: list[tuple[float, float]]  # (seconds since the start, rowsLoaded)


@dataclass(frozen=True)
class Comparison:
    run: Side
    other: Side
    basis: str  # "previous-succeeded" or "picked"
    nodes: list[NodeRow]

    @property
    def same_pipeline(self) -> bool:
        return self.run.run.pipeline_id == self.other.run.pipeline_id

    @property
    def status_changed(self) -> bool:
        return self.run.run.status != self.other.run.status

    @property
    def duration_ratio(self) -> float | None:
        return _ratio(self.run.duration, self.other.duration)

    @property
    def rows_ratio(self) -> float | None:
        return _ratio(self.run.run.rows_loaded, self.other.run.rows_loaded)

    @property
    def bytes_ratio(self) -> float | None:
        return _ratio(self.run.run.bytes_loaded, self.other.run.bytes_loaded)


def _ratio(value, other) -> float | None:
    if value is None or not other:
        return None
    return value / other


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max(0.0, (end - start).total_seconds())


def previous_succeeded(*, run: Run) -> Run | None:
    """The pipeline's newest succeeded run created before ``run``: its id first (an index-only
    scan of the baseline index, see ``runs.stats``), then the run."""
    succeeded = Run.objects.filter(status=RunStatus.SUCCEEDED).filter(
        Q(created_at__lt=run.created_at) | Q(created_at=run.created_at, pk__lt=run.pk)
    )
    pk = of_pipeline_newest_first(succeeded, run.pipeline_id).values_list("pk", flat=True).first()
    return None if pk is None else run_queryset().get(pk=pk)


def recent_of_pipeline(*, run: Run, limit: int = 30) -> list[Run]:
    """Runs of the pipeline to pick from, newest first, without ``run`` itself (ids first)."""
    others = Run.objects.exclude(pk=run.pk)
    pks = list(
        of_pipeline_newest_first(others, run.pipeline_id).values_list("pk", flat=True)[:limit]
    )
    return list(
        Run.objects.filter(pk__in=pks)
        .order_by("-created_at", "-id")
        .only("public_id", "status", "created_at", "pipeline_id")
    )


def _first_errors(runs: list[Run]) -> dict[int, str]:
    """The first error line each run logged (one query), else the first line of its error
    summary."""
    firsts: dict[int, str] = {}
    for run_pk, message in (
        LogLine.objects.filter(
            Q(
                *[Q(run_id=run.pk, seq__gt=run.log_seq - settings.RUN_LOG_CAP) for run in runs],
                _connector=Q.OR,
            ),
            level=LogLevel.ERROR,
        )
        .order_by("run_id", "seq")
        .values_list("run_id", "message")
    ):
        firsts.setdefault(run_pk, message.splitlines()[0] if message else "")
    for run in runs:
        if run.pk not in firsts and run.error_summary:
            firsts[run.pk] = run.error_summary.splitlines()[0]
    return firsts


def _curves(runs: list[Run]) -> dict[int, list[tuple[float, float]]]:
    """Each run's ``rowsLoaded`` samples as (seconds since its start, value), thinned to
    ``CURVE_POINTS`` (one query)."""
    points: dict[int, list[tuple[float, float]]] = {run.pk: [] for run in runs}
    starts = {run.pk: run.started_at or run.created_at for run in runs}
    samples = (
        TelemetrySample.objects.filter(
            Q(
                *[
                    Q(run_id=run.pk, seq__gt=run.sample_seq - settings.RUN_SAMPLE_CAP)
                    for run in runs
                ],
                _connector=Q.OR,
            )
        )
        .order_by("run_id", "seq")
        .values_list("run_id", "at", "values")
    )
    for run_pk, at, values in samples:
        value = values.get(CURVE_KEY) if isinstance(values, dict) else None
        if isinstance(value, int | float) and not isinstance(value, bool):
            points[run_pk].append((max(0.0, (at - starts[run_pk]).total_seconds()), float(value)))
    for run_pk, series in points.items():
        if len(series) > CURVE_POINTS:
            step = (len(series) - 1) / (CURVE_POINTS - 1)
            points[run_pk] = [series[round(index * step)] for index in range(CURVE_POINTS)]
    return points


def _node_rows(run: Run, other: Run) -> list[NodeRow]:
    sides: dict[str, dict[int, NodeSide]] = {}
    order: list[str] = []
    for node in RunNode.objects.filter(run_id__in=[run.pk, other.pk]).order_by("run_id", "id"):
        if node.node_id not in sides:
            sides[node.node_id] = {}
        sides[node.node_id][node.run_id] = NodeSide(
            status=node.status,
            duration=_seconds(node.started_at, node.finished_at),
            rows=node_rows(node),
        )
    # The run's nodes in its order, then the other's missing ones in theirs.
    for owner in (run.pk, other.pk):
        order += [
            node_id for node_id, by_run in sides.items() if owner in by_run and node_id not in order
        ]
    rows = []
    for node_id in order:
        mine, theirs = sides[node_id].get(run.pk), sides[node_id].get(other.pk)
        ratio = _ratio(mine.duration, theirs.duration) if mine and theirs else None
        rows.append(NodeRow(node_id=node_id, run=mine, other=theirs, duration_ratio=ratio))
    return rows


def run_compare(*, run: Run, other: Run, basis: str) -> Comparison:
    """Five queries whatever the runs hold: nodes, first errors and telemetry of both."""
    pair = [run, other]
    errors = _first_errors(pair)
    curves = _curves(pair)

    def side(item: Run) -> Side:
        end = item.finished_at if item.is_final else None
        return Side(
            run=item,
            duration=_seconds(item.started_at, end) if item.is_final else item.duration_seconds,
            first_error=errors.get(item.pk),
            curve=curves.get(item.pk, []),
        )

    return Comparison(run=side(run), other=side(other), basis=basis, nodes=_node_rows(run, other))
