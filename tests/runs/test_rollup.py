"""Closed days summed once (``runs.rollup``): window figures read them and stay exact through
open days, late reports, retention and the window's edges."""

import random
import threading
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from django.db import connection, transaction
from django.test import override_settings
from django.utils import timezone

from pipelines.models import Pipeline
from runs import rollup, stats
from runs.models import PipelineDay, Run, RunStatus
from runs.retention import runs_prune
from runs.tasks import pipeline_days_build
from tests.factories import PipelineFactory, RunFactory
from tests.runs.judgement import iso, report_run

pytestmark = pytest.mark.django_db

on_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="SQLite reads every window from the runs"
)


def build_all(now=None) -> int:
    now = now or timezone.now()
    written = 0
    while step := rollup.build(now=now, max_days=31):
        written += step
    return written


def noon(days_ago: int) -> datetime:
    """Noon of a day ``days_ago`` days back: an hour either side stays on that day."""
    return rollup.start_of(rollup.day_of(timezone.now()) - timedelta(days=days_ago)) + timedelta(
        hours=12
    )


def from_runs_only(monkeypatch, **kwargs):
    """The same figures with no built day used: every run of the window read."""
    with monkeypatch.context() as patched:
        patched.setattr(rollup, "read", lambda *args, **kw: rollup.Built())
        return stats.window_stats(**kwargs)


def month_of(key_client, pipeline) -> dict:
    answer = key_client.get(f"/api/pipelines/{pipeline.public_id}")
    assert answer.status_code == 200, answer.content
    return answer.json()["stats"]


def test_built_days_give_the_hand_computed_figures(key_client, agent_client, pipeline):
    now = timezone.now()
    for index, seconds in enumerate([60, 120, 180, 240]):
        report_run(
            agent_client,
            pipeline,
            start=now - timedelta(days=3 + index),
            seconds=seconds,
            rows=100 * (index + 1),
            size=1000 * (index + 1),
        )
    report_run(agent_client, pipeline, start=now - timedelta(days=2), seconds=5, status="failed")
    report_run(agent_client, pipeline, start=now - timedelta(days=40), seconds=9000)
    before = month_of(key_client, pipeline)

    assert build_all(now) > 0
    built = PipelineDay.objects.filter(pipeline=pipeline, complete=True)
    assert built.count() == 6  # one row per day with runs, 40 days back included
    after = month_of(key_client, pipeline)

    assert after == before
    assert after["runs"] == 5
    assert after["succeeded"] == 4
    assert after["failed"] == 1
    assert after["durationP50Seconds"] == 150.0
    assert after["durationP90Seconds"] == pytest.approx(222.0)  # 180 + 0.7 * (240 - 180)
    assert after["rowsLoadedMedian"] == 250.0
    assert after["bytesLoadedMedian"] == 2500.0


@on_postgresql
def test_reads_take_built_days_from_their_rows_not_from_the_runs(
    key_client, agent_client, pipeline
):
    now = timezone.now()
    run = report_run(agent_client, pipeline, start=now - timedelta(days=3), seconds=100, rows=10)
    build_all(now)
    # Behind the services' back (no product path does this): the built row still answers.
    Run.objects.filter(pk=run.pk).update(rows_loaded=999)
    assert month_of(key_client, pipeline)["rowsLoadedMedian"] == 10.0
    PipelineDay.objects.filter(pipeline=pipeline).update(complete=False)
    assert month_of(key_client, pipeline)["rowsLoadedMedian"] == 999.0


def test_a_late_report_on_a_final_run_of_a_built_day_shows_at_once(
    key_client, agent_client, pipeline
):
    now = timezone.now()
    start = noon(4)
    run = report_run(agent_client, pipeline, start=start, seconds=100, rows=10)
    report_run(agent_client, pipeline, start=start + timedelta(hours=1), seconds=300, rows=30)
    build_all(now)
    assert month_of(key_client, pipeline)["durationP50Seconds"] == 200.0

    late = agent_client.patch(
        f"/api/agent/runs/{run.public_id}",
        {
            "finishedAt": iso(start + timedelta(seconds=500)),
            "telemetrySummary": {"rowsLoaded": 50},
        },
        format="json",
    )
    assert late.status_code == 200, late.content
    day = PipelineDay.objects.get(pipeline=pipeline, day=rollup.day_of(start))
    assert day.complete is False
    month = month_of(key_client, pipeline)
    assert month["durationP50Seconds"] == 400.0
    assert month["rowsLoadedMedian"] == 40.0
    build_all(now)
    assert PipelineDay.objects.get(pipeline=pipeline, day=day.day).complete is True
    assert month_of(key_client, pipeline) == month


def test_a_day_with_a_run_not_final_is_read_from_the_runs_until_it_is(
    key_client, agent_client, pipeline
):
    now = timezone.now()
    start = noon(2)
    report_run(agent_client, pipeline, start=start, seconds=100)
    waiting = RunFactory(pipeline=pipeline, created_at=start + timedelta(hours=1))
    build_all(now)
    open_day = PipelineDay.objects.get(pipeline=pipeline, day=rollup.day_of(start))
    assert open_day.complete is False
    assert month_of(key_client, pipeline)["runs"] == 2

    path = f"/api/agent/runs/{waiting.public_id}"
    claimed = agent_client.patch(
        path, {"status": "running", "startedAt": iso(start)}, format="json"
    )
    assert claimed.status_code == 200
    done = agent_client.patch(
        path,
        {"status": "succeeded", "finishedAt": iso(start + timedelta(seconds=300))},
        format="json",
    )
    assert done.status_code == 200
    assert month_of(key_client, pipeline)["durationP50Seconds"] == 200.0
    build_all(now)
    open_day = PipelineDay.objects.get(pipeline=pipeline, day=open_day.day)
    assert open_day.complete is True
    assert open_day.durations == "100.0,300.0"
    assert month_of(key_client, pipeline)["durationP50Seconds"] == 200.0


def test_runs_that_retention_deletes_leave_the_figures(key_client, agent_client, pipeline):
    now = timezone.now()
    report_run(agent_client, pipeline, start=now - timedelta(days=10), seconds=100)
    report_run(agent_client, pipeline, start=now - timedelta(days=10, hours=1), seconds=200)
    report_run(agent_client, pipeline, start=now - timedelta(days=2), seconds=700)
    build_all(now)
    assert month_of(key_client, pipeline)["runs"] == 3

    Pipeline.objects.filter(pk=pipeline.pk).update(run_retention_days=5)
    assert runs_prune(now=now, dry_run=False, deadline=float("inf")) == {"runs": 2}

    month = month_of(key_client, pipeline)
    assert month["runs"] == 1
    assert month["durationP50Seconds"] == 700.0
    build_all(now)
    assert not PipelineDay.objects.filter(
        pipeline=pipeline, day=rollup.day_of(now - timedelta(days=10))
    ).exists()
    assert month_of(key_client, pipeline) == month


def test_every_window_and_edge_reads_the_same_with_and_without_built_days(monkeypatch):
    """Random runs over 40 days, whole and partial days, statuses, missing values: every window
    (the page's two, dragged ones starting and ending mid-day or at midnight) gives the same
    figures from the built days as from the runs."""
    rng = random.Random(7)
    now = timezone.now()
    pipelines = [PipelineFactory() for _ in range(3)]
    for _ in range(160):
        created = now - timedelta(seconds=rng.uniform(0, 40 * 86400))
        status = rng.choice([RunStatus.SUCCEEDED] * 4 + [RunStatus.FAILED, RunStatus.CANCELED])
        started = created + timedelta(seconds=rng.uniform(0, 30))
        RunFactory(
            pipeline=rng.choice(pipelines),
            created_at=created,
            status=status,
            started_at=started,
            finished_at=started + timedelta(seconds=rng.choice([1, 7.5, 60, 333.25, 4000])),
            rows_loaded=rng.choice([None, 0, 10, 12345]),
            bytes_loaded=rng.choice([None, 5, 1 << 40]),
        )
    RunFactory(pipeline=pipelines[0], created_at=now - timedelta(days=6), status=RunStatus.RUNNING)
    with override_settings(PIPELINE_DAY_GRACE=0):  # yesterday built even in the grace minutes
        build_all(now)
    pks = [p.pk for p in pipelines] + [PipelineFactory().pk]
    midnight = datetime.combine(now.date(), datetime.min.time(), tzinfo=UTC)
    windows = [
        {"window": "7d"},
        {"window": "30d"},
        {"window": "custom", "start": midnight - timedelta(days=12), "now": midnight},
        {
            "window": "custom",
            "start": now - timedelta(days=25, hours=5),
            "now": now - timedelta(days=3, hours=7),
        },
        {"window": "custom", "start": midnight - timedelta(days=38), "now": now},
    ]
    for window in windows:
        for figures_too in (True, False):
            kwargs = {"pipeline_pks": pks, "figures_too": figures_too, **window}
            assert stats.window_stats(**kwargs) == from_runs_only(monkeypatch, **kwargs), window
    if connection.vendor == "postgresql":
        first, last = rollup.full_days(now - timedelta(days=30), now, now=now)
        assert len(rollup.read(pks, first, last).days) == 29


def test_builds_go_newest_first_a_few_days_a_tick_and_forget_old_days(pipeline):
    now = timezone.now()
    for days_ago in (1, 2, 3, 100):
        RunFactory(pipeline=pipeline, created_at=now - timedelta(days=days_ago), status="failed")
    with override_settings(PIPELINE_DAYS_PER_BUILD=2, PIPELINE_DAY_GRACE=0):
        assert pipeline_days_build.call() > 0
        marks = set(PipelineDay.objects.filter(pipeline__isnull=True).values_list("day", flat=True))
        today = rollup.day_of(now)
        assert marks == {today - timedelta(days=1), today - timedelta(days=2)}
        while pipeline_days_build.call():
            pass
    kept = PipelineDay.objects.filter(pipeline=pipeline).values_list("day", flat=True)
    assert sorted(kept) == [rollup.day_of(now - timedelta(days=d)) for d in (3, 2, 1)]
    assert PipelineDay.objects.filter(pipeline__isnull=True).count() == 92


def test_a_day_is_built_only_once_its_grace_has_passed(pipeline):
    midnight = datetime.combine(timezone.now().date(), datetime.min.time(), tzinfo=UTC)
    RunFactory(pipeline=pipeline, created_at=midnight - timedelta(hours=1), status="failed")
    rollup.build(now=midnight + timedelta(seconds=60), max_days=1)
    assert not PipelineDay.objects.filter(day=rollup.day_of(midnight - timedelta(hours=1))).exists()
    rollup.build(now=midnight + timedelta(seconds=301), max_days=1)
    assert PipelineDay.objects.get(pipeline=pipeline).failed == 1


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_a_build_waits_for_no_writer_and_a_writer_waits_for_a_build(pipeline):
    """A transaction that is reporting on a run of a closed day holds the lock shared: a build
    then does nothing (the next tick builds); a build holding it makes the writer's mark wait
    until the build's row is there to mark."""
    now = timezone.now()
    run = RunFactory(pipeline=pipeline, created_at=now - timedelta(days=2), status="failed")
    db = connection.settings_dict
    with psycopg.connect(
        host=db["HOST"], port=db["PORT"] or 5432, dbname=db["NAME"], user=db["USER"]
    ) as writer:
        writer.execute("SELECT pg_advisory_xact_lock_shared(%s)", [rollup._LOCK_KEY])
        assert rollup.build(now=now) == 0
        writer.rollback()
    assert rollup.build(now=now) > 0
    PipelineDay.objects.all().delete()

    marked = threading.Event()

    def writer_marks():
        with transaction.atomic():
            rollup.forget([(pipeline.pk, rollup.day_of(run.created_at))], now=now)
        marked.set()
        connection.close()  # this thread's own connection

    with transaction.atomic():
        assert rollup._lock(shared=False)
        thread = threading.Thread(target=writer_marks)
        thread.start()
        assert not marked.wait(0.5)  # the writer waits for the build
        rollup.build(now=now)  # the same transaction: builds the day
    thread.join(5)
    assert marked.is_set()
    assert PipelineDay.objects.get(pipeline=pipeline).complete is False
