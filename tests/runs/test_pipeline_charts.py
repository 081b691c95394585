"""The pipeline charts' value axes end on round numbers."""

import re
from datetime import UTC, datetime, timedelta

import pytest

from runs.pipeline_charts import ChartPoint, duration_chart_svg, nice_ceiling, volume_chart_svg


@pytest.mark.parametrize(
    ("peak", "top"),
    [(0, 1), (0.7, 0.8), (1, 1), (5, 5), (7, 8), (9.2, 10), (1234, 2000), (61, 80), (350e3, 400e3)],
)
def test_the_axis_top_is_the_next_round_number(peak, top):
    assert nice_ceiling(peak) == pytest.approx(top)


def _points(values):
    start = datetime(2026, 11, 1, tzinfo=UTC)
    return [
        ChartPoint(start + timedelta(hours=i), v, "succeeded", f"/runs/run_{i}/", f"run {i}")
        for i, v in enumerate(values)
    ]


def _ticks(svg: str) -> list[str]:
    return re.findall(r'<text class="tick"[^>]*>([^<]+)</text>', svg)


def test_duration_and_volume_ticks_read_as_round_numbers():
    start, end = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC)
    durations = duration_chart_svg(_points([50, 70, 95]), start=start, end=end, p50=70, p90=90)
    assert _ticks(durations)[:3] == ["0 s", "50 s", "100 s"]
    rows = volume_chart_svg(_points([1234, 800]), start=start, end=end, label="Rows", bytes_=False)
    assert _ticks(rows)[:3] == ["0", "1k", "2k"]
