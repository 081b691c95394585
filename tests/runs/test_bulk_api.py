"""POST /api/runs/bulk and GET /api/runs/bulk/{id}: the preview, the job, the snapshot boundary,
its audit trail, idempotence, and every refusal (which changes nothing)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from common.models import AuditEvent
from runs import bulk
from runs.models import BulkJob, BulkJobState, Run, RunStatus
from tests.factories import PipelineFactory, RunFactory
from tests.webhooks.conftest import run_worker

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def runs(pipeline):
    """Three queued, two running, one cancel-requested, two succeeded, one failed."""
    made = {}
    for status, count in [
        (RunStatus.QUEUED, 3),
        (RunStatus.RUNNING, 2),
        (RunStatus.CANCEL_REQUESTED, 1),
        (RunStatus.SUCCEEDED, 2),
        (RunStatus.FAILED, 1),
    ]:
        made[status] = [RunFactory(pipeline=pipeline, status=status) for _ in range(count)]
    return made


def state() -> dict:
    return {
        "runs": sorted(Run.objects.values_list("public_id", "status", "updated_at")),
        "audit": AuditEvent.objects.count(),
        "jobs": BulkJob.objects.count(),
    }


def test_a_dry_run_previews_touch_and_skip_counts_with_reasons_and_changes_nothing(op, runs):
    before = state()
    response = op.post(
        "/api/runs/bulk", {"action": "cancel", "filter": {}, "dryRun": True}, format="json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["matched"], body["touch"], body["skip"]) == (9, 5, 4)
    assert {item["code"]: item["count"] for item in body["skipReasons"]} == {
        "already_final": 3,
        "cancel_requested": 1,
    }
    touched = [run.public_id for run in runs[RunStatus.QUEUED] + runs[RunStatus.RUNNING]]
    assert [item["id"] for item in body["sample"]] == touched
    assert body["snapshot"] and body["needsConfirm"] is False
    assert state() == before

    rerun = op.post(
        "/api/runs/bulk",
        {
            "action": "rerun",
            "filter": {"status": ["succeeded", "failed", "queued"]},
            "dryRun": True,
        },
        format="json",
    ).json()
    assert (rerun["matched"], rerun["touch"], rerun["skip"]) == (6, 3, 3)
    assert rerun["skipReasons"][0]["code"] == "not_final"


def test_a_bulk_cancel_runs_in_the_worker_each_run_audited_with_the_job_id(op, runs, operator):
    response = op.post(
        "/api/runs/bulk",
        {"action": "cancel", "filter": {"status": "queued,running,succeeded"}},
        format="json",
    )
    assert response.status_code == 202, response.content
    job_id = response.json()["id"]
    assert response.json()["state"] == "queued"
    run_worker()
    job = op.get(f"/api/runs/bulk/{job_id}").json()
    assert job["state"] == "succeeded"
    assert (job["matched"], job["touched"], job["skipped"], job["failed"]) == (7, 5, 2, 0)
    assert job["skipReasons"] == [
        {"code": "already_final", "reason": bulk.SKIP_REASONS["already_final"], "count": 2}
    ]
    for run in runs[RunStatus.QUEUED]:
        assert Run.objects.get(pk=run.pk).status == RunStatus.CANCELED
    for run in runs[RunStatus.RUNNING]:
        assert Run.objects.get(pk=run.pk).status == RunStatus.CANCEL_REQUESTED
    records = AuditEvent.objects.filter(action="run.cancel_requested")
    assert sorted(records.values_list("target_id", flat=True)) == sorted(
        run.public_id for run in runs[RunStatus.QUEUED] + runs[RunStatus.RUNNING]
    )
    assert {record.details["bulkJobId"] for record in records} == {job_id}
    assert {record.actor_id for record in records} == {operator.pk}
    assert AuditEvent.objects.filter(action="bulk_job.started", target_id=job_id).count() == 1


def test_runs_made_after_the_preview_are_not_touched(op, runs, pipeline):
    preview = op.post(
        "/api/runs/bulk",
        {"action": "cancel", "filter": {"status": "queued"}, "dryRun": True},
        format="json",
    ).json()
    late = RunFactory(pipeline=pipeline, status=RunStatus.QUEUED)
    response = op.post(
        "/api/runs/bulk",
        {"action": "cancel", "filter": {"status": "queued"}, "snapshot": preview["snapshot"]},
        format="json",
    )
    assert response.status_code == 202
    run_worker()
    assert Run.objects.get(pk=late.pk).status == RunStatus.QUEUED
    assert op.get(f"/api/runs/bulk/{response.json()['id']}").json()["touched"] == 3


def test_a_bulk_rerun_of_picked_ids_queues_one_new_run_each_and_skips_unfinished(op, runs):
    picked = [runs[RunStatus.SUCCEEDED][0].public_id, runs[RunStatus.QUEUED][0].public_id]
    response = op.post("/api/runs/bulk", {"action": "rerun", "ids": picked}, format="json")
    assert response.status_code == 202, response.content
    run_worker()
    run_worker()  # a second worker pass changes nothing
    job = BulkJob.objects.get(public_id=response.json()["id"])
    assert (job.touched, job.skipped, job.state) == (1, 1, BulkJobState.SUCCEEDED)
    reruns = Run.objects.filter(rerun_of=runs[RunStatus.SUCCEEDED][0])
    assert reruns.count() == 1
    created = AuditEvent.objects.get(action="run.created", target_id=reruns[0].public_id)
    assert created.details["bulkJobId"] == job.public_id


def test_working_a_job_twice_touches_each_run_once(op, runs):
    job_id = op.post("/api/runs/bulk", {"action": "rerun", "filter": {}}, format="json").json()[
        "id"
    ]
    bulk.bulk_job_work(job_id=job_id)
    # As if the worker died after its last run committed but before it marked the job done:
    # the job is taken over and worked again from its stored position.
    BulkJob.objects.filter(public_id=job_id).update(
        state=BulkJobState.RUNNING, heartbeat_at=timezone.now() - timedelta(hours=1)
    )
    bulk.bulk_job_work(job_id=job_id)
    assert Run.objects.filter(trigger_type="rerun").count() == 3
    job = BulkJob.objects.get(public_id=job_id)
    assert (job.touched, job.skipped, job.state) == (3, 6, BulkJobState.SUCCEEDED)


def test_a_viewer_gets_403_and_nothing_changes(viewer, runs):
    before = state()
    for body in (
        {"action": "cancel", "filter": {}, "dryRun": True},
        {"action": "cancel", "filter": {}},
        {"action": "rerun", "ids": [runs[RunStatus.SUCCEEDED][0].public_id]},
    ):
        response = viewer.post("/api/runs/bulk", body, format="json")
        assert response.status_code == 403, response.content
        assert response.json()["role"] == "operator"
    assert state() == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"action": "delete", "filter": {}}, "action"),
        ({"action": "cancel"}, "filter"),
        ({"action": "cancel", "filter": {}, "ids": ["run_x"]}, "filter"),
        ({"action": "cancel", "filter": {"status": "bogus"}}, "filter.status"),
        ({"action": "cancel", "filter": {"from": "yesterday"}}, "filter.from"),
        ({"action": "cancel", "filter": {"pipelineId": "pl_missing"}}, "filter.pipelineId"),
        ({"action": "cancel", "filter": {"colour": "red"}}, "filter.colour"),
        ({"action": "cancel", "filter": {"status": 3}}, "filter.status"),
        ({"action": "cancel", "filter": []}, "filter"),
        ({"action": "cancel", "ids": []}, "ids"),
        ({"action": "cancel", "ids": ["run_nope"]}, "ids[0]"),
        ({"action": "cancel", "ids": [7]}, "ids[0]"),
        ({"action": "cancel", "filter": {}, "dryRun": "yes"}, "dryRun"),
        ({"action": "cancel", "filter": {}, "snapshot": "forged"}, "snapshot"),
        ({"action": "cancel", "filter": {}, "extra": 1}, "extra"),
    ],
)
def test_bad_requests_are_400_naming_the_field_and_change_nothing(op, runs, body, field):
    before = state()
    response = op.post("/api/runs/bulk", body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["errors"], response.json()
    assert state() == before


def test_over_the_confirm_threshold_needs_confirm(op, runs, settings):
    settings.BULK_CONFIRM_OVER = 5
    before = state()
    preview = op.post(
        "/api/runs/bulk", {"action": "cancel", "filter": {}, "dryRun": True}, format="json"
    )
    assert preview.json()["needsConfirm"] is True
    refused = op.post("/api/runs/bulk", {"action": "cancel", "filter": {}}, format="json")
    assert refused.status_code == 400
    assert "confirm" in refused.json()["errors"]
    assert state() == before
    accepted = op.post(
        "/api/runs/bulk", {"action": "cancel", "filter": {}, "confirm": True}, format="json"
    )
    assert accepted.status_code == 202


def test_an_unknown_job_is_404(op):
    assert op.get("/api/runs/bulk/bulk_nope").status_code == 404


def test_a_person_who_lost_the_role_fails_the_remaining_runs(op, runs, operator):
    job_id = op.post(
        "/api/runs/bulk", {"action": "cancel", "filter": {"status": "queued"}}, format="json"
    ).json()["id"]
    operator.groups.clear()
    run_worker()
    job = BulkJob.objects.get(public_id=job_id)
    assert (job.touched, job.failed) == (0, 3)
    assert "operator" in job.failures[0]["reason"]
    assert Run.objects.filter(status=RunStatus.QUEUED).count() == 3


def test_a_job_whose_starter_was_deleted_touches_nothing(op, runs, operator):
    job_id = op.post(
        "/api/runs/bulk", {"action": "cancel", "filter": {"status": "queued"}}, format="json"
    ).json()["id"]
    operator.delete()
    run_worker()
    job = BulkJob.objects.get(public_id=job_id)
    assert job.created_by is None
    assert (job.touched, job.failed) == (0, 3)
    assert "no longer exists" in job.failures[0]["reason"]
    assert Run.objects.filter(status=RunStatus.QUEUED).count() == 3
    assert not AuditEvent.objects.filter(action="run.cancel_requested").exists()


def test_the_sweep_resumes_a_job_whose_worker_went_quiet(op, runs, settings):
    from runs.tasks import resume_bulk_jobs

    job_id = op.post(
        "/api/runs/bulk", {"action": "cancel", "filter": {"status": "queued"}}, format="json"
    ).json()["id"]
    # The worker "died" after claiming it: running, with an old heartbeat, nothing done.
    BulkJob.objects.filter(public_id=job_id).update(
        state=BulkJobState.RUNNING, heartbeat_at=timezone.now() - timedelta(minutes=5)
    )
    from django_tasks_db.models import DBTaskResult

    DBTaskResult.objects.all().delete()
    assert resume_bulk_jobs.call() == 1
    run_worker()
    assert BulkJob.objects.get(public_id=job_id).state == BulkJobState.SUCCEEDED
    assert Run.objects.filter(status=RunStatus.QUEUED).count() == 0


def test_pipeline_filter_is_applied(op, runs):
    other = PipelineFactory(name="noisy")
    RunFactory(pipeline=other, status=RunStatus.QUEUED)
    body = op.post(
        "/api/runs/bulk",
        {"action": "cancel", "filter": {"pipelineId": other.public_id}, "dryRun": True},
        format="json",
    ).json()
    assert (body["matched"], body["touch"]) == (1, 1)


def test_the_service_refuses_an_unknown_action_whoever_calls_it(operator, runs):
    from common.actors import Actor, Source
    from common.errors import InvalidInput

    with pytest.raises(InvalidInput) as refused:
        bulk.bulk_preview(
            actor=Actor.of_user(operator, source=Source.WEB),
            action="delete",
            selection=bulk.selection_parse(filter={}),
        )
    assert "action" in refused.value.errors


def test_a_window_is_read_as_of_the_preview_however_late_the_job_runs(op, pipeline):
    """``window=24h`` names the day before the preview: a job worked two hours later still
    cancels a run made 23 hours before the preview, and leaves one made 25 hours before."""
    import time_machine

    start = timezone.now()
    inside = RunFactory(pipeline=pipeline, status=RunStatus.QUEUED)
    outside = RunFactory(pipeline=pipeline, status=RunStatus.QUEUED)
    Run.objects.filter(pk=inside.pk).update(created_at=start - timedelta(hours=23))
    Run.objects.filter(pk=outside.pk).update(created_at=start - timedelta(hours=25))
    with time_machine.travel(start, tick=True) as traveller:
        preview = op.post(
            "/api/runs/bulk",
            {"action": "cancel", "filter": {"window": "24h"}, "dryRun": True},
            format="json",
        ).json()
        assert (preview["matched"], preview["touch"]) == (1, 1)
        response = op.post(
            "/api/runs/bulk",
            {"action": "cancel", "filter": {"window": "24h"}, "snapshot": preview["snapshot"]},
            format="json",
        )
        assert response.status_code == 202, response.content
        traveller.shift(timedelta(hours=2))
        run_worker()
    assert Run.objects.get(pk=inside.pk).status == RunStatus.CANCELED
    assert Run.objects.get(pk=outside.pk).status == RunStatus.QUEUED
    assert op.get(f"/api/runs/bulk/{response.json()['id']}").json()["touched"] == 1
