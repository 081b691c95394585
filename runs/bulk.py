"""Bulk cancel and bulk re-run over a whole filter, or over picked runs.

``bulk_preview`` answers what a bulk action would do: how many runs it touches, how many it
skips and why, the first few, and a signed ``snapshot`` naming the newest run that existed
(runs made after the preview are never touched). ``bulk_start`` records a ``BulkJob`` pinned to
that snapshot and enqueues ``runs.tasks.bulk_job_run`` on commit; ``bulk_job_work`` works it in
run id order from its stored position. Each run is handled in its own transaction, through the
run services (``run_cancel``, ``run_rerun``: they check the permission and write the audit
record, which carries the job's id), and that same transaction moves the job's position and
counts: a worker killed mid-way leaves the job exactly where its last committed run left it, so
the resumed job (``resume_bulk_jobs`` re-enqueues a job whose heartbeat has gone quiet) touches
no run twice.

The filter is the list filters of ``GET /api/runs``, parsed by the one ``RunFilter``.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.db.models import Count, Max, Q, QuerySet
from django.http import QueryDict
from django.utils import timezone

from common.actors import Actor, Source
from common.audit import AuditAction, audit_record
from common.errors import Conflict, DomainError, InvalidInput
from common.ids import is_plausible_public_id
from common.roles import Perm
from common.time import iso
from runs.filters import RunFilter, run_filter_checked
from runs.models import (
    FINAL_STATUSES,
    BulkAction,
    BulkJob,
    BulkJobState,
    Run,
    RunStatus,
)
from runs.services import run_cancel, run_rerun

logger = logging.getLogger(__name__)

# Runs handled per read of the next candidates (each still in its own transaction).
BATCH_SIZE = 200
SAMPLE_SIZE = 10
MAX_IDS = 1000
MAX_FAILURES_KEPT = 20
SNAPSHOT_SALT = "runs.bulk-snapshot"

TOUCHES: dict[str, frozenset[str]] = {
    BulkAction.CANCEL: frozenset({RunStatus.QUEUED, RunStatus.RUNNING}),
    BulkAction.RERUN: FINAL_STATUSES,
}
SKIP_REASONS = {
    "already_final": "already final (succeeded, failed or canceled): nothing to cancel",
    "cancel_requested": "a cancel was already requested: the runner is stopping it",
    "not_final": "not finished yet (queued or running): only a finished run can be re-run",
}


def _skip_reason(action: str, status: str) -> str:
    if action == BulkAction.CANCEL:
        return "cancel_requested" if status == RunStatus.CANCEL_REQUESTED else "already_final"
    return "not_final"


def bulk_authorize(*, actor: Actor, action: str) -> None:
    """Bulk actions are the operator's: the bulk permission and the one the action needs."""
    actor.require(Perm.BULK_RUNS, doing="running bulk actions")
    if action not in BulkAction.values:
        raise InvalidInput(errors={"action": ["Pick cancel or re-run."]})
    if action == BulkAction.CANCEL:
        actor.require(Perm.CANCEL_RUNS, doing="cancelling runs")
    else:
        actor.require(Perm.TRIGGER_RUNS, doing="re-running runs")


@dataclass(frozen=True)
class Selection:
    """What a bulk request names: the list filters (parameter -> values) or run ids."""

    filter: dict[str, list[str]] | None = None
    run_ids: list[str] | None = None

    def queryset(self, *, at: datetime | None = None) -> QuerySet[Run]:
        """The runs named. With ``at`` (the snapshot's instant) the time filters are read as of
        then: ``window=24h`` is the 24 hours before the preview, however long the job runs."""
        if self.run_ids is not None:
            return Run.objects.filter(public_id__in=self.run_ids)
        errors: dict[str, list[str]] = {}
        filterset = run_filter_checked(
            _query_dict(self.filter or {}), queryset=Run.objects.all(), errors=errors
        )
        if errors:
            raise InvalidInput(
                errors={f"filter.{name}": reasons for name, reasons in errors.items()}
            )
        if at is None:
            return filterset.qs
        lower, upper = filterset.time_bounds(at)
        pinned = filterset.without_time(Run.objects.all())
        if lower is not None:
            pinned = pinned.filter(created_at__gte=lower)
        if upper < at:  # a ``to`` or a closed date range; the snapshot bounds the rest
            pinned = pinned.filter(created_at__lt=upper)
        return pinned


def _query_dict(values: dict[str, list[str]]) -> QueryDict:
    data = QueryDict(mutable=True)
    for name, items in values.items():
        data.setlist(name, items)
    return data


def selection_parse(*, filter: Any = None, ids: Any = None) -> Selection:
    """Check a request's ``filter`` or ``ids`` (exactly one of them); every refusal names its
    field (``filter.status``, ``ids[3]``)."""
    if (filter is None) == (ids is None):
        raise InvalidInput(errors={"filter": ["Send either filter (the list filters) or ids."]})
    if ids is not None:
        return _ids_parse(ids)
    if not isinstance(filter, dict):
        raise InvalidInput(errors={"filter": ["Must be a JSON object of list filters."]})
    errors: dict[str, list[str]] = {}
    parsed: dict[str, list[str]] = {}
    for name, value in filter.items():
        values = value if isinstance(value, list) else [value]
        if name not in RunFilter.base_filters:
            errors[f"filter.{name}"] = [
                f"Unknown filter; use one of {', '.join(RunFilter.base_filters)}."
            ]
        elif not values or not all(isinstance(item, str) for item in values):
            errors[f"filter.{name}"] = ["Must be a string or a list of strings."]
        else:
            parsed[name] = values
    if errors:
        raise InvalidInput(errors=errors)
    selection = Selection(filter=parsed)
    selection.queryset()  # a filter that does not parse is refused now, not by the worker
    return selection


def _ids_parse(ids: Any) -> Selection:
    if not isinstance(ids, list) or not ids:
        raise InvalidInput(errors={"ids": ["Must be a non-empty list of run ids."]})
    if len(ids) > MAX_IDS:
        raise InvalidInput(
            errors={"ids": [f"At most {MAX_IDS} ids; for more, send the filter instead."]}
        )
    errors: dict[str, list[str]] = {}
    for index, value in enumerate(ids):
        if not isinstance(value, str) or not is_plausible_public_id(value):
            errors[f"ids[{index}]"] = ["Must be a run id (run_...)."]
    if errors:
        raise InvalidInput(errors=errors)
    unique = list(dict.fromkeys(ids))
    found = set(Run.objects.filter(public_id__in=unique).values_list("public_id", flat=True))
    for index, value in enumerate(ids):
        if value not in found:
            errors[f"ids[{index}]"] = ["No run with this id."]
    if errors:
        raise InvalidInput(errors=errors)
    return Selection(run_ids=unique)


# The snapshot boundary


@dataclass(frozen=True)
class Snapshot:
    boundary_pk: int
    at: datetime

    def token(self) -> str:
        return signing.dumps([self.boundary_pk, self.at.isoformat()], salt=SNAPSHOT_SALT)


def snapshot_now() -> Snapshot:
    newest = Run.objects.aggregate(m=Max("pk"))["m"] or 0
    return Snapshot(boundary_pk=newest, at=timezone.now())


def snapshot_parse(token: Any) -> Snapshot:
    if not isinstance(token, str):
        raise InvalidInput(errors={"snapshot": ["Must be the snapshot of a dry run."]})
    try:
        boundary_pk, at = signing.loads(
            token, salt=SNAPSHOT_SALT, max_age=settings.BULK_SNAPSHOT_MAX_AGE_SECONDS
        )
        return Snapshot(boundary_pk=int(boundary_pk), at=datetime.fromisoformat(at))
    except signing.SignatureExpired:
        raise InvalidInput(
            errors={"snapshot": ["This preview is too old; preview the action again."]}
        ) from None
    except (signing.BadSignature, ValueError, TypeError):
        raise InvalidInput(errors={"snapshot": ["Invalid or tampered snapshot."]}) from None


# The preview


@dataclass
class Preview:
    action: str
    matched: int
    touch: int
    skip: int
    skip_reasons: dict[str, int]
    sample: list[Run]
    snapshot: Snapshot

    @property
    def needs_confirm(self) -> bool:
        return self.matched > settings.BULK_CONFIRM_OVER


def bulk_preview(
    *, actor: Actor, action: str, selection: Selection, snapshot: Snapshot | None = None
) -> Preview:
    """What ``action`` would do over ``selection`` as it stands: two bounded queries (counts by
    status, and the first few runs it touches, in the order the job works)."""
    bulk_authorize(actor=actor, action=action)
    snapshot = snapshot or snapshot_now()
    pinned = selection.queryset(at=snapshot.at).filter(pk__lte=snapshot.boundary_pk)
    by_status = dict(
        pinned.order_by().values_list("status").annotate(n=Count("pk")).values_list("status", "n")
    )
    touches = TOUCHES[action]
    skip_reasons: dict[str, int] = {}
    for status, count in by_status.items():
        if status not in touches:
            reason = _skip_reason(action, status)
            skip_reasons[reason] = skip_reasons.get(reason, 0) + count
    touch = sum(count for status, count in by_status.items() if status in touches)
    sample = list(
        pinned.filter(status__in=touches)
        .select_related("pipeline", "gateway")
        .order_by("pk")[:SAMPLE_SIZE]
    )
    return Preview(
        action=action,
        matched=sum(by_status.values()),
        touch=touch,
        skip=sum(skip_reasons.values()),
        skip_reasons=skip_reasons,
        sample=sample,
        snapshot=snapshot,
    )


@transaction.atomic
def bulk_start(
    *,
    actor: Actor,
    action: str,
    selection: Selection,
    snapshot: Snapshot | None = None,
    confirm: bool = False,
) -> BulkJob:
    """Record a bulk job over ``selection`` pinned to ``snapshot`` (a dry run's, or now) and
    enqueue it on commit. Over ``BULK_CONFIRM_OVER`` matching runs it needs ``confirm``."""
    preview = bulk_preview(actor=actor, action=action, selection=selection, snapshot=snapshot)
    if preview.needs_confirm and not confirm:
        raise InvalidInput(
            errors={
                "confirm": [
                    f"This matches {preview.matched:,} runs, over "
                    f"{settings.BULK_CONFIRM_OVER:,}: send confirm: true to run it."
                ]
            }
        )
    now = timezone.now()
    job = BulkJob.objects.create(
        action=action,
        filter=selection.filter,
        run_ids=selection.run_ids,
        boundary_pk=preview.snapshot.boundary_pk,
        snapshot_at=preview.snapshot.at,
        matched=preview.matched,
        source=actor.source.value,
        created_by=actor.stored_user,
        created_at=now,
        heartbeat_at=now,
    )
    audit_record(
        actor=actor,
        action=AuditAction.BULK_JOB_STARTED,
        target=job,
        details={
            "action": action,
            "filter": selection.filter,
            "ids": len(selection.run_ids) if selection.run_ids is not None else None,
            "matched": preview.matched,
            "touch": preview.touch,
        },
    )
    transaction.on_commit(lambda: _enqueue(job.public_id), robust=True)
    return job


def _enqueue(job_id: str) -> None:
    from runs import tasks

    tasks.bulk_job_run.enqueue(job_id=job_id)


# The work


def _job_actor(job: BulkJob) -> Actor:
    """The person who started the job, as they acted then: every run service checks them again,
    so a person who lost the role since has every remaining run fail, not touched."""
    return Actor.of_user(job.created_by, source=Source(job.source or Source.API.value))


def _candidates(job: BulkJob) -> QuerySet[Run]:
    selection = Selection(filter=job.filter, run_ids=job.run_ids)
    return selection.queryset(at=job.snapshot_at).filter(pk__lte=job.boundary_pk)


def bulk_job_claim(*, job_pk: int, now: datetime) -> bool:
    """Take a queued job, or one whose worker has gone quiet for longer than the lease; False
    when another worker holds it or it is done."""
    lease = timedelta(seconds=settings.BULK_JOB_LEASE_SECONDS)
    claimed = (
        BulkJob.objects.filter(pk=job_pk)
        .filter(
            Q(state=BulkJobState.QUEUED)
            | Q(state=BulkJobState.RUNNING, heartbeat_at__lt=now - lease)
        )
        .update(state=BulkJobState.RUNNING, heartbeat_at=now)
    )
    if claimed:
        BulkJob.objects.filter(pk=job_pk, started_at__isnull=True).update(started_at=now)
    return bool(claimed)


def bulk_job_work(*, job_id: str) -> BulkJob | None:
    """Work the job to its end, if this caller can claim it. Safe to call twice at once or after
    a crash: each run is decided under the job's row lock against the stored position."""
    job = BulkJob.objects.filter(public_id=job_id).first()
    if job is None or not bulk_job_claim(job_pk=job.pk, now=timezone.now()):
        return None
    position = job.position
    while True:
        batch = list(
            _candidates(job)
            .filter(pk__gt=position)
            .order_by("pk")
            .values_list("pk", flat=True)[:BATCH_SIZE]
        )
        if not batch:
            break
        for run_pk in batch:
            if not _handle_run(job_pk=job.pk, run_pk=run_pk):
                return BulkJob.objects.get(pk=job.pk)  # taken over by another worker
        position = batch[-1]
    BulkJob.objects.filter(pk=job.pk, state=BulkJobState.RUNNING).update(
        state=BulkJobState.SUCCEEDED, finished_at=timezone.now()
    )
    return BulkJob.objects.get(pk=job.pk)


@transaction.atomic
def _handle_run(*, job_pk: int, run_pk: int) -> bool:
    """One run of a job, in one transaction with the job's progress. False when the job is no
    longer this worker's to run (finished meanwhile)."""
    job = (
        BulkJob.objects.select_for_update(of=("self",)).select_related("created_by").get(pk=job_pk)
    )
    if job.state != BulkJobState.RUNNING:
        return False
    if run_pk <= job.position:
        return True  # handled already, by a worker that held the job before
    run = Run.objects.select_for_update().filter(pk=run_pk).first()
    if run is not None:
        _apply(job, run)
    job.position = run_pk
    job.heartbeat_at = timezone.now()
    job.save(
        update_fields=[
            "position",
            "touched",
            "skipped",
            "failed",
            "skip_reasons",
            "failures",
            "heartbeat_at",
        ]
    )
    return True


def _apply(job: BulkJob, run: Run) -> None:
    if run.status not in TOUCHES[job.action]:
        _count_skip(job, _skip_reason(job.action, run.status))
        return
    if job.created_by_id is None:
        # The person who started the job was deleted: nobody may act for them.
        _count_failure(job, run, "the person who started this job no longer exists")
        return
    actor = _job_actor(job)
    try:
        with transaction.atomic():
            if job.action == BulkAction.CANCEL:
                run_cancel(run=run, actor=actor, bulk_job_id=job.public_id)
            else:
                run_rerun(run=run, actor=actor, bulk_job_id=job.public_id)
    except Conflict:
        _count_skip(job, _skip_reason(job.action, run.status))
    except DomainError as exc:
        _count_failure(job, run, exc.message)
    except Exception:
        logger.exception("bulk job %s: run %s failed", job.public_id, run.public_id)
        _count_failure(job, run, "internal error; see the server log")
    else:
        job.touched += 1


def _count_skip(job: BulkJob, reason: str) -> None:
    job.skipped += 1
    job.skip_reasons = {**job.skip_reasons, reason: job.skip_reasons.get(reason, 0) + 1}


def _count_failure(job: BulkJob, run: Run, reason: str) -> None:
    job.failed += 1
    if len(job.failures) < MAX_FAILURES_KEPT:
        job.failures = [*job.failures, {"id": run.public_id, "reason": reason}]


def bulk_jobs_stalled(*, now: datetime) -> list[str]:
    """Unfinished jobs nobody is working: queued or running with a heartbeat older than the
    lease (a worker died, or the enqueue after commit was lost)."""
    lease = timedelta(seconds=settings.BULK_JOB_LEASE_SECONDS)
    return list(
        BulkJob.objects.filter(
            state__in=[BulkJobState.QUEUED, BulkJobState.RUNNING],
            heartbeat_at__lt=now - lease,
        ).values_list("public_id", flat=True)[:100]
    )


def bulk_job_get(*, public_id: str) -> BulkJob | None:
    if not is_plausible_public_id(public_id):
        return None
    return BulkJob.objects.filter(public_id=public_id).select_related("created_by").first()


def skip_reasons_out(counts: dict[str, int]) -> list[dict[str, Any]]:
    return [
        {"code": code, "reason": SKIP_REASONS[code], "count": count}
        for code, count in sorted(counts.items())
    ]


def bulk_job_out(job: BulkJob) -> dict[str, Any]:
    done = job.touched + job.skipped + job.failed
    return {
        "id": job.public_id,
        "action": job.action,
        "state": job.state,
        "filter": job.filter,
        "ids": job.run_ids,
        "snapshotAt": iso(job.snapshot_at),
        "matched": job.matched,
        "done": done,
        "touched": job.touched,
        "skipped": job.skipped,
        "failed": job.failed,
        "skipReasons": skip_reasons_out(job.skip_reasons),
        "failures": job.failures,
        "createdBy": job.created_by.get_username() if job.created_by else None,
        "createdAt": iso(job.created_at),
        "startedAt": iso(job.started_at),
        "finishedAt": iso(job.finished_at),
    }
