"""Log lines and samples in partitions by run id (PostgreSQL): the clock keeps a range ahead
of the newest run, a range is dropped whole once its runs are past their retention, lines kept
longer survive the drop, and appends go on while a range is dropped."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from common.actors import Actor
from common.tasks import prune
from runs import partitions
from runs.models import LogLine, Run, TelemetrySample
from runs.services import run_update
from runs.tasks import log_partitions_ensure
from tests.factories import PipelineFactory, RunFactory
from tests.runs.test_retention import finished_run

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="SQLite keeps plain tables (runs.partitions)"
    ),
]


@pytest.fixture(autouse=True)
def small_partitions(settings):
    settings.LOG_PARTITION_MIN_RUNS = 3


@pytest.fixture
def pipeline(gateway):
    return PipelineFactory(name="orders", default_gateway=gateway)


def holders(run: Run) -> set[str]:
    """The partitions that hold a run's lines and samples."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tableoid::regclass::text FROM runs_logline WHERE run_id = %s UNION "
            "SELECT tableoid::regclass::text FROM runs_telemetrysample WHERE run_id = %s",
            [run.pk, run.pk],
        )
        return {row[0] for row in cursor.fetchall()}


def tables() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent IN ('runs_logline'::regclass, 'runs_telemetrysample'::regclass)"
        )
        return {row[0] for row in cursor.fetchall()}


def fill_to(upper: int, pipeline, *, days_ago: float) -> list[Run]:
    """Old finished runs until the last run id handed out is ``upper - 1``."""
    made = []
    while partitions.last_run_id() < upper - 1:
        made.append(finished_run(pipeline, days_ago=days_ago, lines=2))
    return made


def test_both_tables_are_partitioned_with_a_default_and_the_same_ranges(pipeline):
    assert partitions.partitioned()
    assert log_partitions_ensure.call() == 1
    assert log_partitions_ensure.call() == 0  # far enough ahead already
    [first] = partitions.partitions()
    assert first.upper > partitions.last_run_id() + 3
    assert tables() == {
        "runs_logline_default",
        "runs_telemetrysample_default",
        first.name("runs_logline"),
        first.name("runs_telemetrysample"),
    }
    run = finished_run(pipeline, days_ago=0)
    assert holders(run) == {first.name("runs_logline"), first.name("runs_telemetrysample")}


def test_the_clock_keeps_a_range_ahead_of_the_newest_run(pipeline):
    log_partitions_ensure.call()
    [first] = partitions.partitions()
    fill_to(first.upper - 2, pipeline, days_ago=0)
    assert log_partitions_ensure.call() == 1  # the newest run is within a width of the end
    first_again, second = partitions.partitions()
    assert first_again == first and second.lower == first.upper
    # A day's runs set the width (never below the minimum of three).
    made_today = Run.objects.filter(created_at__gte=timezone.now() - timedelta(days=1)).count()
    assert second.upper - second.lower == max(3, made_today)
    later = fill_to(second.lower + 1, pipeline, days_ago=0)[-1]
    assert holders(later) == {second.name("runs_logline"), second.name("runs_telemetrysample")}
    # A range made after the tables keeps each sample's answer text too (migration 0015).
    texts = TelemetrySample.objects.filter(run=later).values_list("json_text", flat=True)
    assert len(texts) == 2 and None not in texts


def test_a_range_never_covers_rows_the_default_partition_holds(pipeline):
    early = finished_run(pipeline, days_ago=0)  # before any range: in the default partition
    assert holders(early) == {"runs_logline_default", "runs_telemetrysample_default"}
    log_partitions_ensure.call()
    [first] = partitions.partitions()
    assert first.lower == early.pk + 1  # not 1: the default partition holds run ``early``
    # The run in the default partition still reads and appends.
    run_update(
        actor=Actor.system(),
        run=Run.objects.get(pk=early.pk),
        changes={"append_log": {"level": "info", "message": "late"}},
    )
    assert LogLine.objects.filter(run=early).count() == 4


def test_a_range_whose_runs_are_all_past_retention_is_dropped_whole(pipeline, key_client):
    log_partitions_ensure.call()
    [first] = partitions.partitions()
    old = fill_to(first.upper, pipeline, days_ago=31)
    log_partitions_ensure.call()
    young = finished_run(pipeline, days_ago=1)
    second = partitions.partitions()[-1]
    assert holders(young) == {second.name("runs_logline"), second.name("runs_telemetrysample")}

    counts = prune.call()

    assert counts["log partitions"] == 1
    assert counts["runs with log removed"] == len(old)
    assert counts["log lines"] == 0  # nothing deleted row by row
    assert first.name("runs_logline") not in tables()
    assert first.name("runs_telemetrysample") not in tables()
    assert partitions.partitions()[0] == second
    for run in old:
        assert Run.objects.get(pk=run.pk).log_pruned_after_days == 30
        assert not LogLine.objects.filter(run=run).exists()
        assert not TelemetrySample.objects.filter(run=run).exists()
    assert LogLine.objects.filter(run=young).count() == 3
    logs = key_client.get(f"/api/runs/{old[0].public_id}/logs").json()
    assert logs["lines"] == [] and logs["logRemovedAfterDays"] == 30
    assert prune.call()["log partitions"] == 0  # the next range holds a young run


def test_a_range_with_one_young_run_stays_whole_and_its_old_runs_wait(pipeline):
    log_partitions_ensure.call()
    [first] = partitions.partitions()
    old = fill_to(first.upper - 1, pipeline, days_ago=31)
    young = finished_run(pipeline, days_ago=29)
    assert young.pk < first.upper
    log_partitions_ensure.call()

    counts = prune.call()

    assert counts["log partitions"] == 0 and counts["log lines"] == 0
    assert first.name("runs_logline") in tables()
    assert all(LogLine.objects.filter(run=run).count() == 2 for run in old)
    assert Run.objects.get(pk=old[0].pk).log_pruned_after_days is None


def test_lines_kept_longer_survive_the_drop_and_shorter_ones_go_row_by_row(pipeline, gateway):
    keeps_long = PipelineFactory(name="audit", default_gateway=gateway, log_retention_days=200)
    keeps_short = PipelineFactory(name="scratch", default_gateway=gateway, log_retention_days=7)
    log_partitions_ensure.call()
    [first] = partitions.partitions()
    kept = finished_run(keeps_long, days_ago=31)
    fill_to(first.upper, pipeline, days_ago=31)
    log_partitions_ensure.call()
    short = finished_run(keeps_short, days_ago=8)  # in a range that stays (young runs follow)
    finished_run(pipeline, days_ago=1)

    counts = prune.call()

    assert counts["log partitions"] == 1
    assert first.name("runs_logline") not in tables()
    # The long keeper's lines moved to the default partition, whole, and are not marked.
    assert LogLine.objects.filter(run=kept).count() == 3
    assert TelemetrySample.objects.filter(run=kept).count() == 3
    assert holders(kept) == {"runs_logline_default", "runs_telemetrysample_default"}
    assert TelemetrySample.objects.filter(run=kept, json_text__isnull=True).count() == 0
    assert Run.objects.get(pk=kept.pk).log_pruned_after_days is None
    # The short one's range stays, and its lines went row by row.
    assert counts["log lines"] == 3
    assert not LogLine.objects.filter(run=short).exists()
    assert Run.objects.get(pk=short.pk).log_pruned_after_days == 7

    # 201 days on, the kept run's lines go too, from the default partition.
    Run.objects.filter(pk=kept.pk).update(finished_at=kept.finished_at - timedelta(days=170))
    assert prune.call()["log lines"] == 3
    assert not LogLine.objects.filter(run=kept).exists()
    assert Run.objects.get(pk=kept.pk).log_pruned_after_days == 200


def test_dry_run_counts_a_range_and_drops_nothing(pipeline, capsys):
    from django.core.management import call_command

    log_partitions_ensure.call()
    [first] = partitions.partitions()
    old = fill_to(first.upper, pipeline, days_ago=31)
    log_partitions_ensure.call()
    finished_run(pipeline, days_ago=1)

    call_command("prune", "--dry-run")

    out = capsys.readouterr().out
    assert "would delete 1 log partitions" in out
    assert f"would delete {len(old)} runs with log removed" in out
    assert first.name("runs_logline") in tables()
    assert LogLine.objects.filter(run=old[0]).count() == 2


@pytest.mark.django_db(transaction=True)
def test_appends_go_on_while_a_range_is_dropped(pipeline):
    """A runner appending to a young run in the next range while retention drops the old
    one: every append is stored, in order, and the drop happens."""
    try:
        log_partitions_ensure.call()
        [first] = partitions.partitions()
        fill_to(first.upper, pipeline, days_ago=31)
        log_partitions_ensure.call()
        live = RunFactory(pipeline=pipeline)
        run_update(actor=Actor.system(), run=live, changes={"status": "running"})
        errors: list[BaseException] = []
        stop = threading.Event()

        def runner() -> None:
            try:
                index = 0
                while not stop.is_set() or index < 50:
                    run_update(
                        actor=Actor.system(),
                        run=Run.objects.get(pk=live.pk),
                        changes={"append_log": {"level": "info", "message": f"n{index}"}},
                    )
                    index += 1
            except BaseException as error:
                errors.append(error)
            finally:
                connection.close()

        thread = threading.Thread(target=runner)
        thread.start()
        try:
            counts = prune.call()
        finally:
            stop.set()
            thread.join(60)
        assert errors == []
        assert counts["log partitions"] == 1
        messages = list(
            LogLine.objects.filter(run=live).order_by("seq").values_list("message", flat=True)
        )
        assert messages == [f"n{index}" for index in range(len(messages))]
        assert len(messages) >= 50
    finally:
        _drop_ranges()


def _drop_ranges() -> None:
    """A transactional test's ranges outlive it (a flush truncates, it does not drop)."""
    with connection.cursor() as cursor:
        for partition in partitions.partitions():
            for table in partitions.TABLES:
                cursor.execute(f"DROP TABLE {partition.name(table)}")


@pytest.mark.django_db(transaction=True)
def test_a_tick_with_nothing_to_create_waits_for_no_lock(pipeline, caplog):
    """A runner's append in progress holds the log table; the clock's tick, far enough ahead,
    neither waits for it nor gives up on it."""
    try:
        log_partitions_ensure.call()
        holding, release = threading.Event(), threading.Event()

        def runner_mid_append() -> None:
            from django.db import transaction

            try:
                with transaction.atomic(), connection.cursor() as cursor:
                    cursor.execute("LOCK TABLE runs_logline IN ROW EXCLUSIVE MODE")
                    holding.set()
                    release.wait(60)
            finally:
                connection.close()

        thread = threading.Thread(target=runner_mid_append)
        thread.start()
        try:
            assert holding.wait(30)
            assert log_partitions_ensure.call() == 0
        finally:
            release.set()
            thread.join(60)
        assert "lock was busy" not in caplog.text
    finally:
        _drop_ranges()
