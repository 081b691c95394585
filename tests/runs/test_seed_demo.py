"""The demo data agrees with itself: what the pages show about it is true."""

from io import StringIO

import pytest
from django.core.management import call_command

from gateways.models import GatewayHealth
from runs.models import FINAL_STATUSES, Run, RunStatus, TriggerType


@pytest.mark.django_db
def test_seeded_runs_and_gateways_do_not_contradict_each_other():
    call_command("seed_demo", "--runs", "200", "--seed", "7", stdout=StringIO())
    active = Run.objects.filter(status__in=[RunStatus.RUNNING, RunStatus.CANCEL_REQUESTED])
    assert active.exists()
    for run in active.select_related("gateway"):
        # A gateway holding running runs has connected, and recently.
        assert run.gateway.health() == GatewayHealth.ONLINE, run.gateway
    for run in Run.objects.filter(last_report_at__isnull=False).select_related("gateway"):
        if run.gateway:
            assert run.gateway.last_seen_at is not None, run.gateway

    # Runs carry their pipeline's default labels (a re-run its original's).
    for run in Run.objects.select_related("pipeline"):
        assert run.labels == run.pipeline.labels and run.labels["env"] == "prod", run

    reruns = Run.objects.filter(trigger_type=TriggerType.RERUN).select_related("rerun_of")
    assert reruns.exists()
    for run in reruns:
        assert run.rerun_of is not None
        assert run.trigger == {"rerunOf": run.rerun_of.public_id}
        assert run.rerun_of.status in FINAL_STATUSES
        assert run.rerun_of.created_at < run.created_at
        assert run.rerun_of.pipeline_id == run.pipeline_id


@pytest.mark.django_db
def test_a_seeded_run_s_samples_end_where_the_run_ended():
    call_command("seed_demo", "--runs", "200", "--seed", "7", stdout=StringIO())
    with_samples = Run.objects.filter(sample_seq__gt=0).exclude(status=RunStatus.QUEUED)
    failed = with_samples.filter(status=RunStatus.FAILED)
    assert failed.exists()
    for run in with_samples:
        last = run.samples.order_by("-seq").first()
        assert last is not None
        assert last.values["progress"] == pytest.approx(run.progress, abs=0.1), run
        assert last.values["rowsLoaded"] == run.rows_loaded, run
    # A failed run stopped short of the end.
    assert all(run.progress < 100 for run in failed)
