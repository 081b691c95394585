"""The dashboard strip: aggregates over the chosen window only, and the page that shows them."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from runs.dashboard import dashboard_summary
from runs.filters import RunFilter
from runs.models import Run, RunStatus
from runs.selectors import run_queryset
from tests.factories import PipelineFactory, RunFactory, UserFactory


def make_run(pipeline, status, *, ago, minutes=5, rows=None, size=None):
    created = timezone.now() - ago
    final = status in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELED)
    return RunFactory(
        pipeline=pipeline,
        status=status,
        created_at=created,
        started_at=None if status == RunStatus.QUEUED else created,
        finished_at=created + timedelta(minutes=minutes) if final else None,
        rows_loaded=rows,
        bytes_loaded=size,
    )


def summarize(*, hours=24, queryset=None):
    now = timezone.now()
    start = now - timedelta(hours=hours)
    queryset = queryset if queryset is not None else run_queryset()
    return dashboard_summary(
        windowed=queryset.filter(created_at__gte=start, created_at__lt=now),
        unwindowed=queryset,
        start=start,
        end=now,
        label="test",
        is_default_window=False,
    )


@pytest.fixture
def history(pipeline):
    other = PipelineFactory(name="other")
    make_run(pipeline, RunStatus.SUCCEEDED, ago=timedelta(hours=1), minutes=2, rows=100, size=1000)
    make_run(pipeline, RunStatus.SUCCEEDED, ago=timedelta(hours=2), minutes=4, rows=50, size=500)
    make_run(pipeline, RunStatus.SUCCEEDED, ago=timedelta(hours=3), minutes=10, rows=10, size=10)
    make_run(pipeline, RunStatus.FAILED, ago=timedelta(hours=5), minutes=6, rows=5)
    make_run(pipeline, RunStatus.CANCELED, ago=timedelta(hours=6), minutes=1)
    make_run(pipeline, RunStatus.RUNNING, ago=timedelta(minutes=20), rows=7)
    make_run(other, RunStatus.RUNNING, ago=timedelta(minutes=10))
    # Outside a 24 hour window, but still running: counts as running now, not in the window.
    make_run(pipeline, RunStatus.RUNNING, ago=timedelta(days=2))
    make_run(pipeline, RunStatus.FAILED, ago=timedelta(days=3), rows=1_000_000)
    return other


@pytest.mark.django_db
def test_counts_volumes_and_rates_cover_the_window_only(history):
    board = summarize()
    assert board.by_status == {
        RunStatus.SUCCEEDED: 3,
        RunStatus.FAILED: 1,
        RunStatus.CANCELED: 1,
        RunStatus.RUNNING: 2,
    }
    assert board.total == 7
    assert board.rows_loaded == 100 + 50 + 10 + 5 + 7
    assert board.bytes_loaded == 1510
    assert board.success_rate == pytest.approx(75.0)
    assert board.running_now == 3
    # Finished runs in the window last 1, 2, 4, 6 and 10 minutes: the median is 4.
    assert board.median_duration == timedelta(minutes=4)


@pytest.mark.django_db
def test_histogram_bars_add_up_to_the_window_and_keep_statuses(history):
    board = summarize()
    assert sum(bar.total for bar in board.bars) == board.total
    assert board.bar_width == timedelta(hours=1)
    assert 24 <= len(board.bars) <= 25
    # The two running runs started 10 and 20 minutes ago: in the newest one or two bars.
    recent = board.bars[-2:]
    assert sum(bar.counts.get(RunStatus.RUNNING, 0) for bar in recent) == 2
    failed = [bar for bar in board.bars if bar.counts.get(RunStatus.FAILED)]
    assert len(failed) == 1 and failed[0].start <= timezone.now() - timedelta(hours=5)


@pytest.mark.django_db
def test_wide_windows_use_wider_bars(history):
    board = summarize(hours=24 * 30)
    assert board.bar_width == timedelta(days=1)
    assert sum(bar.total for bar in board.bars) == board.total == 9


@pytest.mark.django_db
def test_filters_apply_to_the_strip(history):
    filterset = RunFilter({"pipelineId": history.public_id}, queryset=run_queryset())
    assert filterset.is_valid()
    board = summarize(queryset=filterset.qs)
    assert board.by_status == {RunStatus.RUNNING: 1}
    assert board.running_now == 1
    assert board.success_rate is None
    assert board.median_duration is None


@pytest.mark.django_db
def test_an_empty_window_is_all_zeros(db):
    board = summarize()
    assert board.total == 0 and board.rows_loaded == 0 and board.running_now == 0
    assert board.success_rate is None and board.median_duration is None
    assert board.max_bar == 0


@pytest.mark.django_db
def test_the_strip_on_the_page_says_which_window_it_covers(client, history):
    viewer = UserFactory(username="viewer")
    viewer.groups.add(Group.objects.get(name="viewer"))
    client.force_login(viewer)
    default = client.get("/runs/").content.decode()
    assert "No time range chosen: the summary covers the last 24 hours." in default
    assert (
        '<dt><span class="dot dot-running" aria-hidden="true"></span>Running now</dt><dd>3</dd>'
        in default
    )
    assert "75.0%" in default
    assert '<svg class="histogram"' in default
    chosen = client.get("/runs/?window=7d").content.decode()
    assert "Last 7 days" in chosen and "No time range chosen" not in chosen
    # Runs older than the window stay in the table's history but not in the strip.
    assert Run.objects.count() == 9
    assert (
        '<dt><span class="dot dot-failed" aria-hidden="true"></span>Failed</dt><dd>2</dd>' in chosen
    )
