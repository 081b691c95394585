"""Server-drawn SVG charts of a pipeline's runs: durations with the p50-p90 band, rows and bytes
per run, and the success rate by day. Points are links, so a click opens the run without any
script; ``static/js/pipeline_chart.js`` adds dragging a window across the time axis."""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 960, 240
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 12, 28


@dataclass(frozen=True)
class ChartPoint:
    at: datetime
    value: float
    status: str
    url: str
    label: str


def nice_ceiling(value: float) -> float:
    """The top of a value axis for a peak: the smallest of 1, 2, 3, 4, 5, 6 or 8 times a power
    of ten that holds it, so the ticks at 0, half and the top read as round numbers."""
    if value <= 0:
        return 1.0
    scale = 10.0 ** math.floor(math.log10(value))
    return next(step * scale for step in (1, 2, 3, 4, 5, 6, 8, 10) if step * scale >= value)


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def _axis_time(value: datetime, span: timedelta) -> str:
    return f"{value:%b %-d %H:%M}" if span <= timedelta(days=2) else f"{value:%b %-d}"


def _frame(
    start: datetime,
    end: datetime,
    peak: float,
    formatter: Callable[[float], str],
    *,
    width: int = WIDTH,
    height: int = HEIGHT,
):
    """Scales from time and value to the viewBox, and the axes' markup."""
    span = max(end - start, timedelta(seconds=1))
    plot_w, plot_h = width - LEFT - RIGHT, height - TOP - BOTTOM
    peak = peak or 1.0

    def x_of(at: datetime) -> float:
        return LEFT + plot_w * min(1.0, max(0.0, (at - start) / span))

    def y_of(value: float) -> float:
        return TOP + plot_h * (1 - min(1.0, max(0.0, value / peak)))

    ticks = format_html_join(
        "",
        '<line class="grid" x1="{}" x2="{}" y1="{}" y2="{}"/>'
        '<text class="tick" x="{}" y="{}" text-anchor="end">{}</text>',
        (
            (
                LEFT,
                width - RIGHT,
                f"{y_of(v):.1f}",
                f"{y_of(v):.1f}",
                LEFT - 6,
                f"{y_of(v) + 4:.1f}",
                formatter(v),
            )
            for v in (0, peak / 2, peak)
        ),
    )
    times = format_html_join(
        "",
        '<text class="tick" x="{}" y="{}" text-anchor="{}">{}</text>',
        (
            (f"{x_of(at):.1f}", height - 8, anchor, _axis_time(at, span))
            for at, anchor in (
                (start, "start"),
                (start + span / 2, "middle"),
                (end, "end"),
            )
        ),
    )
    return x_of, y_of, ticks + times


def _svg(
    kind: str,
    label: str,
    start: datetime,
    end: datetime,
    body: SafeString,
    *,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> SafeString:
    return format_html(
        '<svg class="pchart pchart-{}" viewBox="0 0 {} {}" role="img" aria-label="{}" '
        'data-start="{}" data-end="{}" data-left="{}" data-right="{}" data-top="{}" '
        'data-bottom="{}"><title>{}</title>{}</svg>',
        kind,
        width,
        height,
        label,
        _ms(start),
        _ms(end),
        LEFT,
        width - RIGHT,
        TOP,
        height - BOTTOM,
        label,
        body,
    )


def _one_decimal(value: float) -> str:
    """``2``, ``1.5``: one decimal at most, none when it is zero."""
    return f"{value:.1f}".removesuffix(".0")


def _seconds_label(value: float) -> str:
    if value >= 3600:
        return f"{_one_decimal(value / 3600)} h"
    if value >= 120:
        return f"{value / 60:.0f} min"
    return f"{value:.0f} s"


def _count_label(value: float) -> str:
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= size:
            return f"{_one_decimal(value / size)}{suffix}"
    return f"{value:.0f}"


def duration_chart_svg(
    points: Sequence[ChartPoint],
    *,
    start: datetime,
    end: datetime,
    p50: float | None,
    p90: float | None,
) -> SafeString:
    """A point per run (its duration), coloured by status, over the p50-p90 band."""
    peak = nice_ceiling(max([point.value for point in points] + [p90 or 0.0]))
    x_of, y_of, axes = _frame(start, end, peak, _seconds_label)
    band = mark_safe("")
    if p50 is not None and p90 is not None:
        band = format_html(
            '<rect class="band" x="{}" y="{}" width="{}" height="{}"><title>p50-p90 of '
            "succeeded runs: {} to {}</title></rect>"
            '<line class="band-p50" x1="{}" x2="{}" y1="{}" y2="{}"/>',
            LEFT,
            f"{y_of(p90):.1f}",
            WIDTH - LEFT - RIGHT,
            f"{max(0.5, y_of(p50) - y_of(p90)):.1f}",
            _seconds_label(p50),
            _seconds_label(p90),
            LEFT,
            WIDTH - RIGHT,
            f"{y_of(p50):.1f}",
            f"{y_of(p50):.1f}",
        )
    dots = format_html_join(
        "",
        '<a href="{}" class="pt-link"><circle class="pt pt-{}" cx="{}" cy="{}" r="4.5" '
        'data-run="{}"><title>{}</title></circle></a>',
        (
            (
                point.url,
                point.status,
                f"{x_of(point.at):.1f}",
                f"{y_of(point.value):.1f}",
                point.url.rstrip("/").rsplit("/", 1)[-1],
                point.label,
            )
            for point in points
        ),
    )
    return _svg("duration", "Duration of each run over time", start, end, axes + band + dots)


def volume_chart_svg(
    points: Sequence[ChartPoint], *, start: datetime, end: datetime, label: str, bytes_: bool
) -> SafeString:
    """A stem per run at its time, as tall as the rows (or bytes) it loaded."""
    peak = nice_ceiling(max([point.value for point in points], default=0.0))
    formatter = (lambda v: _count_label(v) + "B") if bytes_ else _count_label
    x_of, y_of, axes = _frame(start, end, peak, formatter, width=480, height=180)
    stems = format_html_join(
        "",
        '<a href="{}"><line class="stem stem-{}" x1="{}" x2="{}" y1="{}" y2="{}"/>'
        '<circle class="pt pt-{}" cx="{}" cy="{}" r="2.5"><title>{}</title></circle></a>',
        (
            (
                point.url,
                point.status,
                f"{x_of(point.at):.1f}",
                f"{x_of(point.at):.1f}",
                f"{y_of(0):.1f}",
                f"{y_of(point.value):.1f}",
                point.status,
                f"{x_of(point.at):.1f}",
                f"{y_of(point.value):.1f}",
                point.label,
            )
            for point in points
        ),
    )
    return _svg("volume", label, start, end, axes + stems, width=480, height=180)


def daily_success_svg(
    days: Sequence[tuple[datetime, int, int]], *, start: datetime, end: datetime
) -> SafeString:
    """A bar per day: its succeeded share of the decided runs in green under the failed share."""
    height = 140
    x_of, y_of, axes = _frame(start, end, 100.0, lambda v: f"{v:.0f}%", height=height)
    day_w = max(2.0, x_of(start + timedelta(days=1)) - x_of(start) - 2)
    parts = []
    for day, succeeded, decided in days:
        if not decided:
            continue
        rate = 100.0 * succeeded / decided
        x = f"{x_of(day) + 1:.1f}"
        parts.append(
            format_html(
                "<g><title>{}: {} of {} decided runs succeeded ({}%)</title>"
                '<rect class="day day-bad" x="{}" y="{}" width="{}" height="{}"/>'
                '<rect class="day day-ok" x="{}" y="{}" width="{}" height="{}"/></g>',
                f"{day:%b %-d}",
                succeeded,
                decided,
                f"{rate:.0f}",
                x,
                f"{y_of(100.0):.1f}",
                f"{day_w:.1f}",
                f"{y_of(0) - y_of(100.0):.1f}",
                x,
                f"{y_of(rate):.1f}",
                f"{day_w:.1f}",
                f"{y_of(0) - y_of(rate):.1f}",
            )
        )
    bars = mark_safe("".join(parts))  # noqa: S308 - every part was built with format_html
    return _svg("success", "Success rate by day", start, end, axes + bars, height=height)


def overlay_curves_svg(
    curves: Sequence[tuple[str, str, Sequence[tuple[float, float]]]],
) -> SafeString:
    """Curves of (seconds since the start, value) drawn over one another, one class each."""
    drawn = [(css, label, points) for css, label, points in curves if len(points) >= 2]
    if not drawn:
        return mark_safe("")
    longest = max(t for _, _, points in drawn for t, _ in points) or 1.0
    peak = nice_ceiling(max(v for _, _, points in drawn for _, v in points))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def xy(t: float, v: float) -> str:
        return f"{LEFT + plot_w * t / longest:.1f},{TOP + plot_h * (1 - v / peak):.1f}"

    ticks = format_html_join(
        "",
        '<text class="tick" x="{}" y="{}" text-anchor="end">{}</text>',
        (
            (LEFT - 6, f"{TOP + plot_h * (1 - v / peak) + 4:.1f}", _count_label(v))
            for v in (0, peak / 2, peak)
        ),
    )
    times = format_html(
        '<text class="tick" x="{}" y="{}">0 s</text>'
        '<text class="tick" x="{}" y="{}" text-anchor="end">{} after the start</text>',
        LEFT,
        HEIGHT - 8,
        WIDTH - RIGHT,
        HEIGHT - 8,
        _seconds_label(longest),
    )
    lines = format_html_join(
        "",
        '<polyline class="curve {}" points="{}"><title>{}</title></polyline>',
        ((css, " ".join(xy(t, v) for t, v in points), label) for css, label, points in drawn),
    )
    return format_html(
        '<svg class="pchart pchart-overlay" viewBox="0 0 {} {}" role="img" aria-label="{}">'
        "<title>{}</title>{}</svg>",
        WIDTH,
        HEIGHT,
        "Rows loaded over time by both runs",
        "Rows loaded over time by both runs",
        ticks + times + lines,
    )
