"""Sparklines: the telemetry series of runs, read in one query and drawn as inline SVG.

The series of a whole page of runs comes from ONE query whatever the page holds. Each run keeps
at most ``RUN_SAMPLE_CAP`` samples with consecutive ``seq`` numbers ending at ``run.sample_seq``,
so instead of reading every sample and thinning in Python we ask the unique (run, seq) index for
a handful of evenly spaced sequence numbers per run: the cost depends on the page size and the
number of points, never on how many samples a run holds.
"""

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence

from django.conf import settings
from django.db import connection
from django.db.models import Q
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from runs.models import Run, TelemetrySample

ROW_POINTS = 32
DETAIL_POINTS = 240


def _picked_seqs(run: Run, points: int) -> list[int]:
    """Up to ``points`` evenly spaced sequence numbers over the run's kept samples."""
    last = run.sample_seq
    if last <= 0:
        return []
    first = max(1, last - settings.RUN_SAMPLE_CAP + 1)
    span = last - first + 1
    if span <= points:
        return list(range(first, last + 1))
    step = (span - 1) / (points - 1)
    return sorted({first + round(index * step) for index in range(points)})


def sample_series(
    runs: Iterable[Run], *, points: int = ROW_POINTS, keys: Sequence[str] = ("rowsLoaded",)
) -> dict[int, dict[str, list[float]]]:
    """``{run.pk: {key: [values, oldest first]}}`` for every run, in one query (none if no run
    has samples)."""
    wanted = [(run.pk, seq) for run in runs for seq in _picked_seqs(run, points)]
    if not wanted:
        return {}
    series: dict[int, dict[str, list[float]]] = defaultdict(lambda: {key: [] for key in keys})
    for run_pk, values in _fetch_samples(wanted):
        if isinstance(values, str):
            values = json.loads(values)
        bucket = series[run_pk]
        for key in keys:
            value = values.get(key) if isinstance(values, dict) else None
            if isinstance(value, int | float) and not isinstance(value, bool):
                bucket[key].append(float(value))
    return dict(series)


def _fetch_samples(wanted: list[tuple[int, int]]):
    if connection.vendor == "postgresql":
        # Two array parameters instead of thousands of placeholders: the statement text is the
        # same for every page, so it costs nothing to build or plan; the lateral join makes each
        # (run, seq) pair one probe of the unique (run_id, seq) index, never a table scan (LIMIT 1
        # keeps the planner from flattening it into a hash join over the whole table).
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT p.run_id, s.values FROM unnest(%s::bigint[], %s::bigint[]) "
                "WITH ORDINALITY AS p(run_id, seq, n) CROSS JOIN LATERAL ("
                'SELECT "values" AS values FROM runs_telemetrysample '
                "WHERE run_id = p.run_id AND seq = p.seq LIMIT 1) AS s ORDER BY p.n",
                [[pk for pk, _ in wanted], [seq for _, seq in wanted]],
            )
            return cursor.fetchall()
    by_run: dict[int, list[int]] = defaultdict(list)
    for pk, seq in wanted:
        by_run[pk].append(seq)
    condition = Q()
    for pk, seqs in by_run.items():
        condition |= Q(run_id=pk, seq__in=seqs)
    return list(
        TelemetrySample.objects.filter(condition)
        .order_by("run_id", "seq")
        .values_list("run_id", "values")
    )


def sparkline_svg(
    values: Sequence[float],
    *,
    width: int = 96,
    height: int = 24,
    label: str = "",
    css_class: str = "spark",
    max_value: float | None = None,
) -> SafeString:
    """A line with a soft area under it; an empty string when there is nothing to draw."""
    if len(values) < 2:
        return mark_safe("")
    low = 0.0 if min(values) >= 0 else min(values)
    high = max(max(values), max_value or 0.0)
    spread = (high - low) or 1.0
    pad = 1.5
    inner_w, inner_h = width - 2 * pad, height - 2 * pad
    last = len(values) - 1
    coords = [
        (pad + inner_w * index / last, pad + inner_h * (1 - (value - low) / spread))
        for index, value in enumerate(values)
    ]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
    area = f"{pad:.1f},{height - pad:.1f} {line} {coords[-1][0]:.1f},{height - pad:.1f}"
    end_x, end_y = coords[-1]
    return format_html(
        '<svg class="{}" viewBox="0 0 {} {}" width="{}" height="{}" role="img" '
        'aria-label="{}" preserveAspectRatio="none"><title>{}</title>'
        '<polygon class="spark-area" points="{}"/>'
        '<polyline class="spark-line" points="{}" vector-effect="non-scaling-stroke"/>'
        '<circle class="spark-dot" cx="{}" cy="{}" r="1.8"/></svg>',
        css_class,
        width,
        height,
        width,
        height,
        label,
        label,
        area,
        line,
        f"{end_x:.1f}",
        f"{end_y:.1f}",
    )


def histogram_svg(
    bars, *, statuses: Sequence[str], width: int = 480, height: int = 44
) -> SafeString:
    """Stacked bars of runs per time bucket, one colour (and a tooltip in words) per status."""
    if not bars:
        return mark_safe("")
    peak = max((bar.total for bar in bars), default=0) or 1
    slot = width / len(bars)
    gap = 1.0 if slot > 4 else 0.0
    parts: list[str] = []
    for index, bar in enumerate(bars):
        x = index * slot
        y = float(height)
        words = ", ".join(f"{bar.counts[s]} {s}" for s in statuses if bar.counts.get(s))
        parts.append(
            format_html(
                '<g><title>{}: {}</title><rect class="h-bg" x="{}" y="0" width="{}" height="{}"/>',
                bar.start.strftime("%b %-d %H:%M"),
                words or "no runs",
                f"{x:.1f}",
                f"{max(slot - gap, 0.5):.1f}",
                height,
            )
        )
        for status in statuses:
            count = bar.counts.get(status, 0)
            if not count:
                continue
            h = height * count / peak
            y -= h
            parts.append(
                format_html(
                    '<rect class="h-{}" x="{}" y="{}" width="{}" height="{}"/>',
                    status,
                    f"{x:.1f}",
                    f"{y:.1f}",
                    f"{max(slot - gap, 0.5):.1f}",
                    f"{h:.1f}",
                )
            )
        parts.append("</g>")
    return format_html(
        '<svg class="histogram" viewBox="0 0 {} {}" preserveAspectRatio="none" role="img" '
        'aria-label="Runs over the window by status">{}</svg>',
        width,
        height,
        mark_safe("".join(parts)),  # noqa: S308 - every part was built with format_html
    )
