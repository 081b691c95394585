import threading
import time
from datetime import timedelta

import pytest
import time_machine
from django.db import connection, transaction
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from common.actors import Actor
from runs.models import PatchReceipt, Run, RunStatus
from runs.services import run_cancel
from runs.tasks import finish_unconfirmed_cancels, prune_patch_receipts, reap_lost_runs
from tests.factories import GatewayFactory, PipelineFactory, RunFactory
from webhooks.models import WebhookEvent

pytestmark = pytest.mark.django_db

needs_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="row locks (SELECT ... FOR UPDATE) between concurrent workers need PostgreSQL",
)


def agent_url(run: Run) -> str:
    return f"/api/agent/runs/{run.public_id}"


def claim(agent_client, run: Run) -> None:
    response = agent_client.patch(agent_url(run), {"status": "running"}, format="json")
    assert response.status_code == 200, response.content


def events(run: Run) -> list[str]:
    """The outbox events recorded for a run: one per final status it reached."""
    return list(WebhookEvent.objects.filter(run=run).values_list("type", flat=True))


def agent_for(raw_token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_token}")
    return client


def reap() -> int:
    return reap_lost_runs.call()


def test_runner_silent_longer_than_the_lease_is_failed_as_lost(agent_client, run):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        claim(agent_client, run)
    with time_machine.travel(start + timedelta(minutes=10), tick=False):
        assert reap() == 0  # exactly the lease: not yet
    with time_machine.travel(start + timedelta(minutes=12, seconds=30), tick=False):
        assert reap() == 1
        assert reap() == 0  # a second pass finds nothing to do
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert run.error_summary == "runner lost: no report for 12 minutes"
    assert run.finished_at == start + timedelta(minutes=12, seconds=30)
    assert events(run) == ["run.failed"]


def test_each_report_renews_the_lease(agent_client, run):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        claim(agent_client, run)
    with time_machine.travel(start + timedelta(minutes=8), tick=False):
        report = {"appendLog": {"level": "info", "message": "still going"}}
        assert agent_client.patch(agent_url(run), report, format="json").status_code == 200
    with time_machine.travel(start + timedelta(minutes=15), tick=False):
        assert reap() == 0
    with time_machine.travel(start + timedelta(minutes=18, seconds=1), tick=False):
        assert reap() == 1
    run.refresh_from_db()
    assert run.error_summary == "runner lost: no report for 10 minutes"


def test_lease_is_per_gateway_and_runs_without_gateway_use_the_default():
    now = timezone.now()
    short = GatewayFactory(name="short", lease_seconds=120)
    long = GatewayFactory(name="long", lease_seconds=3600)
    silent_since = now - timedelta(minutes=5)

    def running_run(gateway):
        return RunFactory(
            pipeline=PipelineFactory(default_gateway=gateway),
            gateway=gateway,
            status=RunStatus.RUNNING,
            started_at=silent_since,
            last_report_at=silent_since,
        )

    on_short, on_long = running_run(short), running_run(long)
    with override_settings(GATEWAY_DEFAULT_LEASE_SECONDS=240):
        no_gateway = running_run(None)
        assert reap() == 2
    statuses = dict(Run.objects.values_list("pk", "status"))
    assert statuses[on_short.pk] == RunStatus.FAILED
    assert statuses[on_long.pk] == RunStatus.RUNNING
    assert statuses[no_gateway.pk] == RunStatus.FAILED


def test_cancel_requested_runs_are_reaped_and_other_statuses_are_not():
    long_ago = timezone.now() - timedelta(hours=3)
    gateway = GatewayFactory(lease_seconds=600)
    pipeline = PipelineFactory(default_gateway=gateway)
    stale = {
        status: RunFactory(
            pipeline=pipeline,
            status=status,
            created_at=long_ago,
            started_at=long_ago if status != RunStatus.QUEUED else None,
            cancel_requested_at=long_ago if status == RunStatus.CANCEL_REQUESTED else None,
        )
        for status in RunStatus.values
    }
    assert reap() == 2
    for status, run in stale.items():
        run.refresh_from_db()
        if status in (RunStatus.RUNNING, RunStatus.CANCEL_REQUESTED):
            assert run.status == RunStatus.FAILED
            assert run.error_summary == "runner lost: no report for 180 minutes"
        else:
            assert run.status == status


def test_late_patch_from_a_reaped_runner_gets_409(agent_client, run):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        claim(agent_client, run)
    with time_machine.travel(start + timedelta(minutes=11), tick=False):
        assert reap() == 1
        late = agent_client.patch(agent_url(run), {"status": "succeeded"}, format="json")
        late_log = agent_client.patch(
            agent_url(run), {"appendLog": {"level": "info", "message": "still here"}}, format="json"
        )
    assert late.status_code == late_log.status_code == 409
    assert late.json()["code"] == "conflict"
    # The only line is the control plane's own, saying why it closed the run.
    [line] = run.log_lines.all()
    assert line.level == "error" and not line.node_id
    assert line.message == (
        "Failed by the control plane: no report from the runner for 11 minutes, "
        "longer than the gateway's lease of 10 minutes."
    )
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert run.error_summary.startswith("runner lost")


def test_a_final_patch_before_the_reaper_leaves_nothing_to_reap(agent_client, run):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        claim(agent_client, run)
    with time_machine.travel(start + timedelta(minutes=11), tick=False):
        done = agent_client.patch(agent_url(run), {"status": "succeeded"}, format="json")
        assert done.status_code == 200
        assert reap() == 0
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED and run.error_summary == ""


def wait_until_blocked_on_a_lock(thread: threading.Thread, timeout: float = 10.0) -> None:
    """Wait until another backend is waiting for a row lock (PostgreSQL)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            # Statistics views are frozen for the rest of a transaction once read: refresh.
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            )
            if cursor.fetchone()[0]:
                return
        assert thread.is_alive()
        time.sleep(0.02)
    raise AssertionError("the reaper never waited for the run's lock")


def run_in_thread(target, results: list) -> threading.Thread:
    def body():
        try:
            results.append(target())
        finally:
            connection.close()

    thread = threading.Thread(target=body)
    thread.start()
    return thread


def stale_running_run() -> Run:
    long_ago = timezone.now() - timedelta(hours=1)
    return RunFactory(status=RunStatus.RUNNING, started_at=long_ago, last_report_at=long_ago)


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_two_reapers_racing_fail_a_stale_run_exactly_once():
    runs = [stale_running_run() for _ in range(5)]
    barrier = threading.Barrier(2, timeout=10)
    results: list[int] = []

    def racing_reaper() -> int:
        barrier.wait()
        # The job itself, without the lock that keeps two workers from running it at once
        # (tests/runs/test_retention.py): its row locks alone must fail each run once.
        return reap_lost_runs.func.__wrapped__()

    threads = [run_in_thread(racing_reaper, results) for _ in range(2)]
    for thread in threads:
        thread.join(timeout=30)
    assert len(results) == 2 and sum(results) == len(runs)
    for run in runs:
        run.refresh_from_db()
        assert run.status == RunStatus.FAILED
        assert run.error_summary == "runner lost: no report for 60 minutes"
        assert events(run) == ["run.failed"]


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_the_runners_final_patch_wins_the_race_with_the_reaper(gateway, gateway_token):
    run = RunFactory(pipeline=PipelineFactory(default_gateway=gateway))
    agent = agent_for(gateway_token)
    claim(agent, run)
    long_ago = timezone.now() - timedelta(hours=1)
    Run.objects.filter(pk=run.pk).update(last_report_at=long_ago)

    results: list[int] = []
    with transaction.atomic():
        # The runner's PATCH transaction has the run's row lock when the reaper arrives...
        Run.objects.select_for_update().get(pk=run.pk)
        reaper = run_in_thread(reap, results)
        wait_until_blocked_on_a_lock(reaper)
        # ...and commits its final status while the reaper waits.
        done = agent.patch(agent_url(run), {"status": "succeeded"}, format="json")
        assert done.status_code == 200
    reaper.join(timeout=30)
    assert results == [0]
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert run.error_summary == ""
    assert events(run) == ["run.succeeded"]


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_a_report_committed_while_the_reaper_waits_renews_the_lease(gateway, gateway_token):
    run = RunFactory(pipeline=PipelineFactory(default_gateway=gateway))
    agent = agent_for(gateway_token)
    claim(agent, run)
    Run.objects.filter(pk=run.pk).update(last_report_at=timezone.now() - timedelta(hours=1))

    results: list[int] = []
    with transaction.atomic():
        Run.objects.select_for_update().get(pk=run.pk)
        reaper = run_in_thread(reap, results)
        wait_until_blocked_on_a_lock(reaper)
        report = {"appendLog": {"level": "info", "message": "back"}}
        assert agent.patch(agent_url(run), report, format="json").status_code == 200
    reaper.join(timeout=30)
    assert results == [0]
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING
    assert events(run) == []


@override_settings(RUN_CANCEL_GRACE_SECONDS=300)
def test_unconfirmed_cancel_is_marked_canceled_after_the_grace_period(agent_client, run):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        claim(agent_client, run)
    with time_machine.travel(start + timedelta(minutes=1), tick=False):
        run_cancel(actor=Actor.system(), run=run)
    # The runner still reports (it learns of the cancel here) but never confirms.
    with time_machine.travel(start + timedelta(minutes=2), tick=False):
        body = agent_client.patch(
            agent_url(run), {"appendLog": {"level": "info", "message": "busy"}}, format="json"
        ).json()
        assert body["status"] == "cancel_requested"
        listed = agent_client.get("/api/agent/runs").json()["data"]
        assert [item["id"] for item in listed] == [run.public_id]
    with time_machine.travel(start + timedelta(minutes=6), tick=False):
        assert finish_unconfirmed_cancels.call() == 0
    with time_machine.travel(start + timedelta(minutes=6, seconds=1), tick=False):
        assert finish_unconfirmed_cancels.call() == 1
        assert finish_unconfirmed_cancels.call() == 0
        assert reap() == 0
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELED
    assert run.finished_at == start + timedelta(minutes=6, seconds=1)
    assert "did not confirm the cancel within 5 minutes" in run.error_summary
    assert events(run) == ["run.canceled"]
    late = agent_client.patch(agent_url(run), {"status": "canceled"}, format="json")
    assert late.status_code == 200  # the status it already has: a no-op
    assert (
        agent_client.patch(agent_url(run), {"status": "failed"}, format="json").status_code == 409
    )


def test_a_confirmed_cancel_is_left_alone(agent_client, run):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        claim(agent_client, run)
        run_cancel(actor=Actor.system(), run=run)
        confirmed = agent_client.patch(agent_url(run), {"status": "canceled"}, format="json")
        assert confirmed.status_code == 200
    with time_machine.travel(start + timedelta(hours=1), tick=False):
        assert finish_unconfirmed_cancels.call() == 0
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELED and run.error_summary == ""


def test_periodic_tasks_are_registered_for_the_worker(settings):
    assert "runs.tasks.reap_lost_runs" in settings.PERIODIC_TASKS
    assert "runs.tasks.finish_unconfirmed_cancels" in settings.PERIODIC_TASKS
    assert "runs.tasks.prune_patch_receipts" in settings.PERIODIC_TASKS


def append(agent_client, run: Run, key: str):
    return agent_client.patch(
        agent_url(run),
        {"appendLog": {"level": "info", "message": key}},
        format="json",
        headers={"Idempotency-Key": key},
    )


@override_settings(IDEMPOTENCY_KEY_RETENTION_HOURS=24)
def test_idempotency_keys_are_forgotten_after_the_retention_period(agent_client, run):
    start = timezone.now()
    claim(agent_client, run)
    with time_machine.travel(start, tick=False):
        assert append(agent_client, run, "old").status_code == 200
    with time_machine.travel(start + timedelta(hours=23), tick=False):
        assert append(agent_client, run, "recent").status_code == 200
    with time_machine.travel(start + timedelta(hours=24, minutes=1), tick=False):
        assert prune_patch_receipts.call() == 1
        assert set(PatchReceipt.objects.values_list("key", flat=True)) == {"recent"}
        # Within the window a retry is still applied once; past it the key is new again.
        assert append(agent_client, run, "recent").status_code == 200
        assert append(agent_client, run, "old").status_code == 200
    messages = list(run.log_lines.order_by("seq").values_list("message", flat=True))
    assert messages == ["old", "recent", "old"]


@override_settings(IDEMPOTENCY_KEY_RETENTION_HOURS=1)
def test_pruning_works_through_a_backlog_in_batches(agent_client, run, monkeypatch):
    monkeypatch.setattr("runs.tasks.PRUNE_BATCH_SIZE", 3)
    monkeypatch.setattr("runs.tasks.PRUNE_MAX_BATCHES", 2)
    old = timezone.now() - timedelta(hours=2)
    PatchReceipt.objects.bulk_create(
        PatchReceipt(run=run, key=f"k{index}", created_at=old) for index in range(8)
    )
    assert prune_patch_receipts.call() == 6
    assert prune_patch_receipts.call() == 2
    assert prune_patch_receipts.call() == 0
    assert not PatchReceipt.objects.exists()
