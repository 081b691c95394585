"""The node timeline of run detail: a Gantt chart of the run's nodes, drawn on the server as SVG.

One bar per node on a time axis that starts when the run was created, so the time it waited in
the queue shows as a band before the first node; bars are coloured by status, retried nodes are
marked, and the critical path (the chain of nodes that set the run's length) is outlined. Each
bar is a link that filters the log to its node (``?nodeId=``), with its duration and rows in a
tooltip on hover and keyboard focus. While the run runs, open bars reach "now"; the live part of
run detail redraws it on every poll.

Runners report when each node started and finished but not which node waited for which, so the
critical path is read from the timings, the way a profiler reads one from a trace: from the node
that finished last, step back to the node that finished last before it started, and so on.
Nothing here queries the database: it draws the nodes run detail has already loaded.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.safestring import SafeString, mark_safe

from runs.models import Run, RunNode

WIDTH = 1160
LABEL_W = 170
PAD_R = 150
ROW_H = 22
BAR_H = 14
AXIS_H = 22
MAX_NODES = 200
KNOWN_STATUSES = {
    "queued",
    "pending",
    "running",
    "cancel_requested",
    "succeeded",
    "failed",
    "canceled",
    "skipped",
}
ROW_KEYS = ("rowsLoaded", "rowsWritten", "rowsOut", "rowsIn", "rowsRead", "rows")
TICK_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 21600, 43200]


@dataclass
class Span:
    node: RunNode
    start: datetime
    end: datetime
    open: bool


def _short(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m" + (f" {seconds:02d}s" if seconds else "")
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h" + (f" {minutes:02d}m" if minutes else "")


def node_rows(node: RunNode) -> int | float | None:
    metrics = node.metrics if isinstance(node.metrics, dict) else {}
    for key in ROW_KEYS:
        value = metrics.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value
    return None


def critical_path(spans: Sequence[Span]) -> list[Span]:
    """The chain of spans, oldest first, that ends with the span finishing last and steps back
    each time to the span that finished last before the current one started."""
    if not spans:
        return []
    origin = min(s.start for s in spans)
    # Plain numbers: comparing datetimes (and model instances) in the loop is what costs.
    times = [((s.start - origin).total_seconds(), (s.end - origin).total_seconds()) for s in spans]
    slack = max(1.0, max(end for _, end in times) * 0.005)
    current = max(range(len(spans)), key=lambda i: (times[i][1], times[i][0]))
    chain, seen = [current], {current}
    while True:
        begin = times[current][0]
        before = [
            i
            for i, (start, end) in enumerate(times)
            if i not in seen and end <= begin + slack and start < begin
        ]
        if not before:
            break
        current = max(before, key=lambda i: (times[i][1], times[i][0]))
        chain.append(current)
        seen.add(current)
    return [spans[i] for i in reversed(chain)]


def _ticks(seconds: float) -> list[int]:
    step = next((step for step in TICK_STEPS if seconds / step <= 6), TICK_STEPS[-1])
    return list(range(0, int(seconds) + 1, step))


def _tick_label(offset: int) -> str:
    return "0" if offset == 0 else f"+{_short(offset)}"


def timeline_svg(
    run: Run,
    nodes: Sequence[RunNode],
    *,
    now: datetime | None = None,
    selected: str = "",
    detail_url: str = "",
) -> SafeString:
    """The chart, or an empty string when no node has started."""
    now = now or timezone.now()
    origin = run.created_at
    run_end = run.finished_at if run.is_final and run.finished_at else None
    spans: list[Span] = []
    for node in nodes[:MAX_NODES]:
        if node.started_at is None:
            continue
        start = max(node.started_at, origin)
        if node.finished_at is not None:
            spans.append(Span(node, start, max(node.finished_at, start), False))
        else:
            spans.append(Span(node, start, max(run_end or now, start), run_end is None))
    if not spans:
        return mark_safe("")
    started = run.started_at or min(s.start for s in spans)
    end = max([s.end for s in spans] + [run_end or (now if not run.is_final else started)])
    total = max((end - origin).total_seconds(), 1.0)
    inner = WIDTH - LABEL_W - PAD_R
    path = critical_path(spans)
    critical = {id(span) for span in path}
    critical_seconds = sum((s.end - s.start).total_seconds() for s in spans if id(s) in critical)

    def x(moment: datetime) -> float:
        return LABEL_W + inner * (moment - origin).total_seconds() / total

    ordered = sorted(
        (node for node in nodes[:MAX_NODES]),
        key=lambda n: (n.started_at is None, n.started_at or origin, n.pk or 0),
    )
    by_node = {id(s.node): s for s in spans}
    top = AXIS_H + ROW_H  # the first row is the run's own queue band
    height = top + ROW_H * len(ordered) + 6
    parts: list[str] = []

    # Axis: offsets from the run's creation, with faint grid lines through every row.
    for offset in _ticks(total):
        tick_x = LABEL_W + inner * offset / total
        parts.append(
            format_html(
                '<line class="tl-grid" x1="{}" y1="{}" x2="{}" y2="{}"/>'
                '<text class="tl-tick" x="{}" y="14" text-anchor="middle">{}</text>',
                f"{tick_x:.1f}",
                AXIS_H - 4,
                f"{tick_x:.1f}",
                height - 4,
                f"{tick_x:.1f}",
                _tick_label(offset),
            )
        )

    # The run: queued, then running until its end (or now).
    queue_end = run.started_at or (now if not run.is_final else end)
    row_y = AXIS_H + (ROW_H - BAR_H) / 2
    wait = (queue_end - origin).total_seconds()
    parts.append(
        format_html(
            '<g class="tl-run"><title>Queued {} before the run started</title>'
            '<text class="tl-label" x="4" y="{}">run (queued {})</text>'
            '<rect class="tl-queued" x="{}" y="{}" width="{}" height="{}" rx="2"/></g>',
            _short(wait),
            f"{row_y + BAR_H - 3:.1f}",
            _short(wait),
            f"{LABEL_W:.1f}",
            f"{row_y:.1f}",
            f"{max(x(queue_end) - LABEL_W, 1.0):.1f}",
            BAR_H,
        )
    )

    critical_points: list[tuple[float, float]] = []
    for index, node in enumerate(ordered):
        y = top + ROW_H * index
        bar_y = y + (ROW_H - BAR_H) / 2
        span = by_node.get(id(node))
        status = node.status if node.status in KNOWN_STATUSES else "other"
        rows = node_rows(node)
        if span is None:
            words = f"{node.node_id}: {node.status or 'not started'}, not started"
        else:
            seconds = (span.end - span.start).total_seconds()
            words = f"{node.node_id}: {node.status}, {_short(seconds)}"
            words += " so far" if span.open else ""
            words += f", started +{_short((span.start - origin).total_seconds())}"
        if rows is not None:
            words += f", {rows:,} rows"
        if node.retries:
            words += f", {node.retries} {'retry' if node.retries == 1 else 'retries'}"
        is_critical = span is not None and id(span) in critical
        if is_critical:
            words += ", on the critical path"
        classes = ["tl-node", f"tl-{status}"]
        classes += ["is-critical"] if is_critical else []
        classes += ["is-open"] if span is not None and span.open else []
        classes += ["is-selected"] if selected and node.node_id == selected else []
        classes += ["is-pending"] if span is None else []
        label = node.node_id if len(node.node_id) <= 20 else node.node_id[:19] + "…"
        href = f"{detail_url}?{urlencode({'nodeId': node.node_id})}#log-panel"
        shapes = ""
        tip_x = LABEL_W + 4
        if span is not None:
            x0, x1 = x(span.start), x(span.end)
            width = max(x1 - x0, 2.0)
            tip_x = min(x0 + width + 4, WIDTH - PAD_R + 4)
            shapes = format_html(
                '<rect class="tl-bar" x="{}" y="{}" width="{}" height="{}" rx="2"/>',
                f"{x0:.1f}",
                f"{bar_y:.1f}",
                f"{width:.1f}",
                BAR_H,
            )
            if node.retries:
                shapes += format_html(
                    '<text class="tl-retry" x="{}" y="{}">↻{}</text>',
                    f"{min(x0 + width + 3, WIDTH - 22):.1f}",
                    f"{bar_y + BAR_H - 3:.1f}",
                    node.retries,
                )
                tip_x += 22
            if is_critical:
                critical_points.append((x0, bar_y + BAR_H / 2))
                critical_points.append((x0 + width, bar_y + BAR_H / 2))
        meta = _short((span.end - span.start).total_seconds()) if span else "not started"
        if rows is not None:
            meta += f" · {rows:,} rows"
        parts.append(
            format_html(
                '<a class="{}" href="{}" data-node-id="{}" aria-label="{}">'
                "<title>{}</title>"
                '<rect class="tl-hit" x="0" y="{}" width="{}" height="{}"/>'
                '<text class="tl-label" x="4" y="{}">{}</text>{}'
                '<text class="tl-tip" x="{}" y="{}">{}</text></a>',
                " ".join(classes),
                href,
                node.node_id,
                words,
                words,
                y,
                WIDTH,
                ROW_H,
                f"{bar_y + BAR_H - 3:.1f}",
                label,
                shapes,
                f"{tip_x:.1f}",
                f"{bar_y + BAR_H - 3:.1f}",
                meta,
            )
        )

    # The critical path as one line through its bars, from each bar's end to the next's start.
    if len(critical_points) >= 4:
        parts.insert(
            0,
            format_html(
                '<polyline class="tl-critical-line" points="{}"/>',
                " ".join(f"{px:.1f},{py:.1f}" for px, py in critical_points),
            ),
        )
    chain = [s.node.node_id for s in path]
    summary = (
        f"Node timeline of {len(ordered)} nodes over {_short(total)}; critical path "
        f"{' → '.join(chain)} ({_short(critical_seconds)})."
    )
    return format_html(
        '<svg class="timeline" viewBox="0 0 {} {}" width="{}" height="{}" role="group" '
        'aria-label="{}" data-critical="{}">{}</svg>',
        WIDTH,
        f"{height:.0f}",
        WIDTH,
        f"{height:.0f}",
        summary,
        " ".join(chain),
        mark_safe("".join(parts)),  # noqa: S308 - every part was built with format_html
    )
