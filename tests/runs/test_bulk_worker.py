"""A bulk cancel over thousands of runs, worked by the real worker process (the Procfile's
``run_worker``), killed with SIGKILL mid-way and started again: the job finishes, and every run
is checked in the database and in the audit trail, each touched exactly once."""

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from common.actors import Actor
from common.models import AuditEvent
from gateways.services import api_key_issue
from runs.models import BulkJob, BulkJobState, Run, RunStatus
from tests.factories import PipelineFactory

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
QUEUED, RUNNING, FINAL = 1200, 300, 500


def database_url() -> str:
    """The test database, for a process of its own."""
    params = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{params['NAME']}"
    auth = params["USER"] + (f":{params['PASSWORD']}" if params.get("PASSWORD") else "")
    host = params["HOST"] or "127.0.0.1"
    return f"postgres://{auth}@{host}:{params['PORT'] or 5432}/{params['NAME']}"


def start_worker(log: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "SECRET_KEY": os.environ.get("SECRET_KEY") or "x" * 50,
        "PERIODIC_TASKS_INTERVAL": "1",
        "BULK_JOB_LEASE_SECONDS": "3",
        "PYTHONUNBUFFERED": "1",
    }
    return subprocess.Popen(
        [sys.executable, "manage.py", "run_worker"],
        cwd=ROOT,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def wait_for(predicate, *, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def make_runs(pipeline) -> None:
    now = timezone.now()
    statuses = (
        [RunStatus.QUEUED] * QUEUED
        + [RunStatus.RUNNING] * RUNNING
        + [RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELED] * (FINAL // 3)
        + [RunStatus.SUCCEEDED] * (FINAL % 3)
    )
    Run.objects.bulk_create(
        [
            Run(
                pipeline=pipeline,
                gateway=pipeline.default_gateway,
                status=status,
                created_at=now - timezone.timedelta(seconds=len(statuses) - index),
                started_at=None if status == RunStatus.QUEUED else now,
                finished_at=now if status not in (RunStatus.QUEUED, RunStatus.RUNNING) else None,
            )
            for index, status in enumerate(statuses)
        ],
        batch_size=1000,
    )


def test_a_bulk_cancel_killed_mid_way_finishes_after_a_restart_touching_each_run_once(
    operator, tmp_path
):
    pipeline = PipelineFactory(name="finance_daily")
    make_runs(pipeline)
    before = dict(Run.objects.values_list("public_id", "status"))
    _, raw = api_key_issue(actor=Actor.system(), user=operator)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    body = {"action": "cancel", "filter": {"pipelineId": pipeline.public_id}}
    preview = client.post("/api/runs/bulk", {**body, "dryRun": True}, format="json").json()
    assert (preview["touch"], preview["skip"]) == (QUEUED + RUNNING, FINAL)
    accepted = client.post(
        "/api/runs/bulk", {**body, "snapshot": preview["snapshot"]}, format="json"
    )
    assert accepted.status_code == 202, accepted.content
    job_id = accepted.json()["id"]
    job = BulkJob.objects.get(public_id=job_id)

    log = tmp_path / "worker.log"
    worker = start_worker(log)
    try:
        wait_for(
            lambda: BulkJob.objects.get(pk=job.pk).touched >= 200,
            timeout=120,
            what="the job to get going",
        )
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        if worker.poll() is None:
            worker.kill()
    killed = BulkJob.objects.get(pk=job.pk)
    assert killed.state == BulkJobState.RUNNING
    done_at_kill = killed.touched + killed.skipped + killed.failed
    assert 0 < done_at_kill < QUEUED + RUNNING + FINAL, "killed mid-way, not after the end"

    worker = start_worker(log)
    try:
        finished = wait_for(
            lambda: BulkJob.objects.filter(pk=job.pk, state=BulkJobState.SUCCEEDED).first(),
            timeout=240,
            what=f"the job to finish after the restart; worker log:\n{log.read_text()[-3000:]}",
        )
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()

    assert (finished.touched, finished.skipped, finished.failed) == (QUEUED + RUNNING, FINAL, 0)
    assert finished.skip_reasons == {"already_final": FINAL}
    after = dict(Run.objects.values_list("public_id", "status"))
    assert after.keys() == before.keys(), "no run made or lost"
    expected = {
        RunStatus.QUEUED: RunStatus.CANCELED,
        RunStatus.RUNNING: RunStatus.CANCEL_REQUESTED,
    }
    for public_id, status in before.items():
        assert after[public_id] == expected.get(status, status), public_id

    records = AuditEvent.objects.filter(action="run.cancel_requested", target_type="runs.run")
    per_run = Counter(records.values_list("target_id", flat=True))
    touched = {public_id for public_id, status in before.items() if status in expected}
    assert set(per_run) == touched
    assert set(per_run.values()) == {1}, "every run touched exactly once"
    assert set(records.values_list("details__bulkJobId", flat=True)) == {job_id}
    assert set(records.values_list("actor", flat=True)) == {operator.pk}
