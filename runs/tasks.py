"""Periodic jobs, enqueued by the worker's clock (``settings.PERIODIC_TASKS``).

The two that finish runs are idempotent and safe with several workers: candidates are read
without locks, then each run is re-checked under its row lock and finished by a service
(``run_fail_if_lost``, ``run_cancel_if_unconfirmed``) that does nothing unless the run still
qualifies. Whoever commits first wins
(a runner's final PATCH, another worker); everyone else changes nothing. On top of that each
job holds a lock of its own (``common.locks``), so two workers' clocks never run it at once.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import OperationalError
from django.db.models import Min
from django.db.models.functions import Coalesce
from django.tasks import task
from django.utils import timezone

from common.locks import run_exclusively
from gateways.models import Gateway
from runs import partitions, rollup
from runs.bulk import bulk_job_work, bulk_jobs_stalled
from runs.models import ACTIVE_STATUSES, PatchReceipt, Run, RunStatus
from runs.services import run_cancel_if_unconfirmed, run_fail_if_lost

logger = logging.getLogger(__name__)

# Bounds the work of one tick; anything left over is picked up by the next one.
BATCH_SIZE = 500


def _shortest_lease() -> timedelta:
    shortest = Gateway.objects.aggregate(m=Min("lease_seconds"))["m"]
    seconds = settings.GATEWAY_DEFAULT_LEASE_SECONDS
    if shortest is not None:
        seconds = min(seconds, shortest)
    return timedelta(seconds=seconds)


@task
@run_exclusively
def reap_lost_runs() -> int:
    """Fail runs in ``running`` or ``cancel_requested`` whose runner has gone quiet for longer
    than its gateway's lease. Returns how many runs this call failed."""
    now = timezone.now()
    # Cheap pre-filter in SQL with the shortest lease of all; the exact per-gateway lease is
    # applied per row under its lock.
    candidates = (
        Run.objects.filter(status__in=ACTIVE_STATUSES)
        .alias(seen=Coalesce("last_report_at", "started_at", "created_at"))
        .filter(seen__lt=now - _shortest_lease())
        .order_by("pk")
        .values_list("pk", flat=True)[:BATCH_SIZE]
    )
    reaped = sum(run_fail_if_lost(run_pk=pk, now=now) is not None for pk in list(candidates))
    if reaped:
        logger.warning("failed %d run(s) whose runner was lost", reaped)
    return reaped


@task
@run_exclusively
def finish_unconfirmed_cancels() -> int:
    """Mark ``canceled`` the runs whose runner never confirmed a cancel within
    ``RUN_CANCEL_GRACE_SECONDS``. Returns how many runs this call finished."""
    now = timezone.now()
    grace = timedelta(seconds=settings.RUN_CANCEL_GRACE_SECONDS)
    candidates = (
        Run.objects.filter(status=RunStatus.CANCEL_REQUESTED, cancel_requested_at__lt=now - grace)
        .order_by("pk")
        .values_list("pk", flat=True)[:BATCH_SIZE]
    )
    finished = sum(
        run_cancel_if_unconfirmed(run_pk=pk, now=now) is not None for pk in list(candidates)
    )
    return finished


# Receipts deleted per statement: small enough not to hold locks or bloat one transaction.
PRUNE_BATCH_SIZE = 5000
PRUNE_MAX_BATCHES = 20


@task
@run_exclusively
def prune_patch_receipts() -> int:
    """Forget Idempotency-Keys older than ``IDEMPOTENCY_KEY_RETENTION_HOURS``: every keyed PATCH
    leaves a receipt, and a retry comes within seconds or minutes, not days. Returns how many
    receipts this call deleted (at most ``PRUNE_MAX_BATCHES`` batches; the rest next tick)."""
    cutoff = timezone.now() - timedelta(hours=settings.IDEMPOTENCY_KEY_RETENTION_HOURS)
    deleted = 0
    for _ in range(PRUNE_MAX_BATCHES):
        ids = list(
            PatchReceipt.objects.filter(created_at__lt=cutoff).values_list("pk", flat=True)[
                :PRUNE_BATCH_SIZE
            ]
        )
        if not ids:
            break
        deleted += PatchReceipt.objects.filter(pk__in=ids).delete()[0]
    return deleted


@task
def bulk_job_run(job_id: str) -> int | None:
    """Work a bulk job to its end (``runs.bulk``); a second call while one works it, or after
    it finished, does nothing. Returns how many runs the job has touched."""
    job = bulk_job_work(job_id=job_id)
    return job.touched if job is not None else None


@task
@run_exclusively
def resume_bulk_jobs() -> int:
    """Re-enqueue the bulk jobs nobody is working (their worker died mid-way, or the enqueue
    after commit was lost); each carries on from its stored position. Returns how many."""
    stalled = bulk_jobs_stalled(now=timezone.now())
    for job_id in stalled:
        bulk_job_run.enqueue(job_id=job_id)
    return len(stalled)


@task
@run_exclusively
def log_partitions_ensure() -> int:
    """Keep the next range of log and sample partitions created ahead of the newest run
    (PostgreSQL, ``runs.partitions``). Returns how many ranges this call created."""
    if not partitions.partitioned():
        return 0
    try:
        created = partitions.ensure_ahead(now=timezone.now())
    except OperationalError:
        logger.warning("log partitions: the tables' lock was busy; the next tick tries again")
        return 0
    if created:
        logger.info("log partitions created for run ids %s", [(p.lower, p.upper) for p in created])
    return len(created)


@task
@run_exclusively
def pipeline_days_build() -> int:
    """Sum the closed days of each pipeline's runs not summed yet, and those a change reopened
    (``runs.rollup``). Returns how many rows it wrote."""
    written = rollup.build(now=timezone.now())
    if written:
        logger.info("pipeline days built: %s rows", written)
    return written
