"""Retention: old logs, runs, deliveries and audit events go; everything younger, unfinished or
still pending stays; a pipeline's override wins; pruning never runs twice at once."""

import threading
from datetime import timedelta

import pytest
from django.conf import settings as settings_module
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from common import retention
from common.actors import Actor
from common.locks import exclusive
from common.models import AuditEvent
from common.tasks import prune
from runs.models import LogLine, Run, RunStatus, TelemetrySample
from runs.services import run_update
from tests.factories import PipelineFactory, RunFactory, UserFactory
from webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEvent

pytestmark = pytest.mark.django_db


def finished_run(pipeline, *, days_ago: float, status=RunStatus.SUCCEEDED, lines: int = 3) -> Run:
    """A run with log lines, samples and a summary, finished (and created) ``days_ago``."""
    run = RunFactory(pipeline=pipeline)
    run_update(actor=Actor.system(), run=run, changes={"status": "running"})
    for index in range(lines):
        run_update(
            actor=Actor.system(),
            run=run,
            changes={
                "append_log": {"level": "info", "message": f"line {index}"},
                "append_telemetry_sample": {"rowsLoaded": index},
                "telemetry_summary": {"rowsLoaded": index},
            },
        )
    if status is not None:
        run_update(actor=Actor.system(), run=run, changes={"status": status})
    when = timezone.now() - timedelta(days=days_ago)
    Run.objects.filter(pk=run.pk).update(
        created_at=when, finished_at=when if status is not None else None
    )
    return Run.objects.get(pk=run.pk)


@pytest.fixture
def pipeline(gateway):
    return PipelineFactory(name="orders", default_gateway=gateway)


def test_logs_of_old_finished_runs_go_and_the_run_and_summary_stay(pipeline, key_client):
    old = finished_run(pipeline, days_ago=31)
    young = finished_run(pipeline, days_ago=29)
    unfinished = finished_run(pipeline, days_ago=45, status=None)

    counts = prune.call()

    assert counts["log lines"] == 3 and counts["telemetry samples"] == 3
    old.refresh_from_db()
    assert old.log_pruned_after_days == 30
    assert old.telemetry_summary == {"rowsLoaded": 2}
    assert not LogLine.objects.filter(run=old).exists()
    assert not TelemetrySample.objects.filter(run=old).exists()
    for kept in (young, unfinished):
        assert LogLine.objects.filter(run=kept).count() == 3
        assert Run.objects.get(pk=kept.pk).log_pruned_after_days is None

    logs = key_client.get(f"/api/runs/{old.public_id}/logs").json()
    assert logs["lines"] == [] and logs["logRemovedAfterDays"] == 30
    assert key_client.get(f"/api/runs/{young.public_id}/logs").json()["logRemovedAfterDays"] is None
    analyst = Client()
    reader = UserFactory(username="reader")
    reader.groups.add(Group.objects.get(name="viewer"))
    analyst.force_login(reader)
    page = analyst.get(f"/runs/{old.public_id}/").content.decode()
    assert "Log removed after 30 days" in page
    assert "No log lines yet" not in page


def test_old_finished_runs_go_with_their_events_and_unfinished_ones_stay(pipeline, receiver_url):
    from webhooks.services import webhook_endpoint_create

    webhook_endpoint_create(actor=Actor.system(), url=receiver_url, events=["run.succeeded"])
    old = finished_run(pipeline, days_ago=91)
    still_running = finished_run(pipeline, days_ago=120, status=None)
    young = finished_run(pipeline, days_ago=89)
    assert WebhookEvent.objects.filter(run=old).exists()

    counts = prune.call()

    assert counts["runs"] == 1
    assert not Run.objects.filter(pk=old.pk).exists()
    assert not WebhookEvent.objects.filter(run_id=old.pk).exists()
    assert set(Run.objects.values_list("pk", flat=True)) == {still_running.pk, young.pk}


def test_a_pipeline_override_beats_the_defaults(pipeline, gateway):
    keeps_long = PipelineFactory(
        name="audit_trail", default_gateway=gateway, run_retention_days=400, log_retention_days=200
    )
    keeps_short = PipelineFactory(name="scratch", default_gateway=gateway, log_retention_days=7)
    long_run = finished_run(keeps_long, days_ago=150)
    short_run = finished_run(keeps_short, days_ago=8)
    default_run = finished_run(pipeline, days_ago=8)

    prune.call()

    long_run.refresh_from_db()
    short_run.refresh_from_db()
    assert long_run.log_pruned_after_days is None  # 150 days < 200
    assert short_run.log_pruned_after_days == 7
    assert Run.objects.get(pk=default_run.pk).log_pruned_after_days is None


def test_finished_deliveries_and_old_audit_events_go(pipeline, receiver_url):
    from webhooks.services import webhook_endpoint_create

    webhook_endpoint_create(actor=Actor.system(), url=receiver_url, events=["run.succeeded"])
    finished_run(pipeline, days_ago=1)
    finished_run(pipeline, days_ago=2)
    done, pending = WebhookDelivery.objects.order_by("pk")
    WebhookDelivery.objects.filter(pk=done.pk).update(
        status=DeliveryStatus.SUCCEEDED, created_at=timezone.now() - timedelta(days=31)
    )
    WebhookDelivery.objects.filter(pk=pending.pk).update(
        created_at=timezone.now() - timedelta(days=31)
    )
    AuditEvent.objects.create(
        actor_label="ana", action="run.cancel", target_type="run", target_id="r", target_repr="r"
    )
    AuditEvent.objects.filter(target_id="r").update(created_at=timezone.now() - timedelta(days=366))
    AuditEvent.objects.create(
        actor_label="ana", action="run.cancel", target_type="run", target_id="s", target_repr="s"
    )

    counts = prune.call()

    assert counts["webhook deliveries"] == 1 and counts["audit events"] == 1
    assert list(WebhookDelivery.objects.values_list("pk", flat=True)) == [pending.pk]
    # The old record went; the new one and the services' own (this test's writes) stay.
    kept = set(AuditEvent.objects.values_list("target_id", flat=True))
    assert "r" not in kept and "s" in kept


def test_dry_run_prints_what_it_would_delete_and_deletes_nothing(pipeline, capsys):
    old = finished_run(pipeline, days_ago=31, lines=4)
    finished_run(pipeline, days_ago=100, lines=1)
    before = (Run.objects.count(), LogLine.objects.count(), TelemetrySample.objects.count())

    call_command("prune", "--dry-run")

    out = capsys.readouterr().out
    assert "would delete 2 runs with log removed" in out
    assert "would delete 5 log lines" in out
    assert "would delete 1 runs" in out
    assert (Run.objects.count(), LogLine.objects.count(), TelemetrySample.objects.count()) == before
    assert Run.objects.get(pk=old.pk).log_pruned_after_days is None

    call_command("prune")
    assert "deleted 1 runs" in capsys.readouterr().out


def test_pruning_never_runs_twice_at_once(pipeline):
    finished_run(pipeline, days_ago=31)
    held, release = threading.Event(), threading.Event()
    taken: list[bool] = []

    def other_worker() -> None:
        from django.db import connection

        try:
            with exclusive("prune") as got:
                taken.append(got)
                held.set()
                release.wait(30)
        finally:
            connection.close()

    thread = threading.Thread(target=other_worker)
    thread.start()
    try:
        assert held.wait(30)
        assert taken == [True]  # the other worker holds the job's lock
        assert prune.call() is None  # skipped: another worker holds it
        assert LogLine.objects.count() == 3
    finally:
        release.set()
        thread.join()
    assert prune.call()["log lines"] == 3


def test_the_pipelines_api_sets_and_refuses_overrides(pipeline, key_client, user):
    user.is_superuser = True
    user.save()
    url = f"/api/pipelines/{pipeline.public_id}"

    changed = key_client.patch(url, {"logRetentionDays": 7}, format="json")
    refused = key_client.patch(url, {"runRetentionDays": 0}, format="json")
    wrong_type = key_client.patch(url, {"runRetentionDays": "90"}, format="json")

    assert changed.status_code == 200, changed.content
    assert changed.json()["logRetentionDays"] == 7 and changed.json()["runRetentionDays"] is None
    assert refused.status_code == 400 and "runRetentionDays" in refused.json()["errors"]
    assert wrong_type.status_code == 400 and "runRetentionDays" in wrong_type.json()["errors"]
    pipeline.refresh_from_db()
    assert (pipeline.log_retention_days, pipeline.run_retention_days) == (7, None)
    cleared = key_client.patch(url, {"logRetentionDays": None}, format="json")
    assert cleared.json()["logRetentionDays"] is None


@pytest.fixture
def receiver_url(settings):
    """Deliveries are only recorded here, never sent (no worker runs in these tests)."""
    settings.WEBHOOK_ALLOW_PRIVATE_URLS = True
    return "http://127.0.0.1:9/hooks"


def test_finished_task_results_go_after_two_days_and_queued_tasks_stay():
    from django_tasks_db.models import DBTaskResult

    from webhooks.tasks import webhook_sweep

    done, queued = webhook_sweep.enqueue(), webhook_sweep.enqueue()
    long_ago = timezone.now() - timedelta(days=3)
    DBTaskResult.objects.filter(pk=done.id).update(
        status="SUCCESSFUL", started_at=long_ago, finished_at=long_ago
    )
    DBTaskResult.objects.filter(pk=queued.id).update(run_after=long_ago)

    counts = prune.call()

    assert counts["task results"] == 1
    assert [str(pk) for pk in DBTaskResult.objects.values_list("pk", flat=True)] == [queued.id]


def test_pruning_works_in_batches_and_stops_at_its_deadline(pipeline, settings):
    for _ in range(3):
        finished_run(pipeline, days_ago=100)
    settings.RETENTION_RUN_BATCH = 1
    settings.RETENTION_LOG_BATCH_RUNS = 1

    first = retention.prune(seconds=0)  # no time: one batch of each kind, then stop

    assert first["runs"] == 1 and first["runs with log removed"] == 1
    assert Run.objects.count() == 2
    assert retention.prune()["runs"] == 2  # the next tick takes the rest


def test_every_kind_pruned_is_one_the_metrics_know(pipeline):
    assert set(retention.prune(dry_run=True)) == set(settings_module.PRUNED_KINDS)
