"""The judgement's per-pipeline lookups: their results against a plain reading of the runs, and
(PostgreSQL) their plans on a table that is not all-visible, where the planner once walked the
whole history for a pipeline with no succeeded runs."""

import random
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from runs import stats
from runs.compare import previous_succeeded, recent_of_pipeline
from runs.models import Run, RunStatus
from tests.factories import PipelineFactory, RunFactory
from tests.runs.judgement import T0

pytestmark = pytest.mark.django_db

STATUSES = ["succeeded", "succeeded", "succeeded", "failed", "failed", "canceled", "running"]


@pytest.fixture
def history():
    """Three pipelines' runs interleaved, with ties on created_at (broken by id): one with every
    status, one that only fails, one with no runs at all."""
    rng = random.Random(7)
    mixed, failing, empty = PipelineFactory(), PipelineFactory(), PipelineFactory()
    for index in range(60):
        at = T0 + timedelta(minutes=index // 2)  # two runs share each minute
        pipeline = mixed if index % 3 else failing
        status = rng.choice(STATUSES) if pipeline == mixed else RunStatus.FAILED
        RunFactory(
            pipeline=pipeline,
            status=status,
            created_at=at,
            started_at=at,
            finished_at=None if status == "running" else at + timedelta(seconds=10 + index),
            rows_loaded=100 + index,
            bytes_loaded=1000 + index,
        )
    return mixed, failing, empty


def newest_first(pipeline, **filters) -> list[Run]:
    runs = Run.objects.filter(pipeline=pipeline, **filters)
    return sorted(runs, key=lambda run: (run.created_at, run.pk), reverse=True)


def test_recent_succeeded_are_each_pipelines_newest_succeeded_runs(history):
    mixed, failing, empty = history

    recent = stats.recent_succeeded([mixed.pk, failing.pk, empty.pk])

    expected = newest_first(mixed, status=RunStatus.SUCCEEDED)[: settings.BASELINE_RUNS + 1]
    assert [item.pk for item in recent[mixed.pk]] == [run.pk for run in expected]
    assert [item.duration for item in recent[mixed.pk]] == [
        (run.finished_at - run.started_at).total_seconds() for run in expected
    ]
    assert [item.rows for item in recent[mixed.pk]] == [run.rows_loaded for run in expected]
    assert failing.pk not in recent
    assert empty.pk not in recent


def test_failure_streaks_count_back_from_each_run(history):
    mixed, failing, _ = history
    anchors = newest_first(mixed)[:15] + newest_first(failing)[:3]

    streaks = stats.failure_streaks([(run.pipeline_id, run.created_at, run.pk) for run in anchors])

    def by_hand(anchor: Run) -> int:
        older = [
            run
            for run in newest_first(anchor.pipeline)
            if (run.created_at, run.pk) <= (anchor.created_at, anchor.pk)
        ][: stats.STREAK_LOOKBACK]
        count = 0
        for run in older:
            if run.status == RunStatus.SUCCEEDED:
                break
            count += run.status == RunStatus.FAILED
        return count

    assert streaks == [by_hand(run) for run in anchors]
    assert streaks[-3:] == [stats.STREAK_LOOKBACK] * 3  # the failing pipeline, capped


def test_last_runs_and_the_pipelines_recent_runs(history):
    mixed, failing, empty = history

    last = stats.last_runs(pipeline_pks=[mixed.pk, failing.pk, empty.pk])
    anchor = newest_first(mixed)[5]

    assert last[mixed.pk].public_id == newest_first(mixed)[0].public_id
    assert last[failing.pk].public_id == newest_first(failing)[0].public_id
    assert empty.pk not in last
    assert [run.pk for run in recent_of_pipeline(run=anchor, limit=8)] == [
        run.pk for run in newest_first(mixed) if run.pk != anchor.pk
    ][:8]
    older_succeeded = [
        run
        for run in newest_first(mixed, status=RunStatus.SUCCEEDED)
        if (run.created_at, run.pk) < (anchor.created_at, anchor.pk)
    ]
    assert previous_succeeded(run=anchor).pk == older_succeeded[0].pk
    assert previous_succeeded(run=newest_first(failing)[0]) is None


# ---------------------------------------------------------------------------------------------
# Plans (PostgreSQL): thousands of runs, analysed but not vacuumed (as after a burst of writes
# with autovacuum behind), so that index-only scans look dear to the planner.

SEED_SQL = """
INSERT INTO runs_run (public_id, pipeline_id, gateway_id, status, trigger_type, trigger, labels,
    created_at, updated_at, started_at, finished_at, error_summary, finished_by_system,
    telemetry_summary, rows_loaded, bytes_loaded, progress, log_seq, sample_seq)
SELECT 'run_plan' || lpad(g::text, 22, '0'), %(pipeline)s, %(gateway)s,
    CASE WHEN g %% 10 = 3 THEN 'failed' ELSE 'succeeded' END, 'api', '{}', '{}',
    t, t, t, t + interval '30 seconds', '', false, '{}', 100, 1000, 100, 0, 0
FROM generate_series(1, %(runs)s) AS g,
    LATERAL (SELECT %(start)s::timestamptz + g * interval '1 minute') AS c(t)
"""


@pytest.fixture
def unvacuumed_history():
    busy, idle, empty = PipelineFactory(), PipelineFactory(), PipelineFactory()
    with connection.cursor() as cursor:
        cursor.execute(
            SEED_SQL,
            {"pipeline": busy.pk, "gateway": busy.default_gateway_id, "runs": 20_000, "start": T0},
        )
        cursor.execute("ANALYZE runs_run")
    # The idle pipeline's last runs are its only ones, failed, long ago.
    for minutes in range(3):
        at = T0 - timedelta(days=30, minutes=minutes)
        RunFactory(pipeline=idle, status=RunStatus.FAILED, created_at=at, started_at=at)
    return busy, idle, empty


def plans_of(call) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        call()
    plans = []
    with connection.cursor() as cursor:
        for query in captured.captured_queries:
            cursor.execute(f"EXPLAIN {query['sql']}")
            plans.append("\n".join(row[0] for row in cursor.fetchall()))
    return plans


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL plans")
def test_per_pipeline_lookups_probe_the_pipelines_index_not_the_whole_history(
    unvacuumed_history,
):
    busy, idle, empty = unvacuumed_history
    pks = [busy.pk, idle.pk, empty.pk]
    now = T0 + timedelta(days=30)
    idle_run = Run.objects.get(pipeline=idle, created_at=T0 - timedelta(days=30))

    lookups = {
        "baselines": lambda: stats.recent_succeeded(pks),
        "streaks": lambda: stats.failure_streaks([(pk, now, 2**62) for pk in pks]),
        "last runs": lambda: stats.last_runs(pipeline_pks=pks),
        "previous succeeded": lambda: previous_succeeded(run=idle_run),
    }
    for name, call in lookups.items():
        plans = plans_of(call)
        assert not any("run_created_idx" in plan for plan in plans), (name, plans)
    assert "run_baseline_idx" in plans_of(lookups["baselines"])[0]
    assert "run_pipeline_created_idx" in plans_of(lookups["streaks"])[0]
