"""Retention of runs: their log lines and samples after ``RUN_LOG_RETENTION_DAYS`` (the run row,
its summary and nodes stay, marked ``log_pruned_after_days``), the whole run after
``RUN_RETENTION_DAYS``; a pipeline's ``log_retention_days``/``run_retention_days`` override them.

On PostgreSQL the lines and samples are in partitions by run id (``runs.partitions``): a range
whose runs are all past their retention is dropped whole, and only what lies outside the ranges
(or belongs to a pipeline that keeps its logs for less than the default) is deleted row by row.

Only finished runs are touched. Each batch is one short transaction over a few runs, found
oldest first through an index (``run_log_kept_idx``, ``run_created_idx``), so that pruning a
busy day never holds a lock a runner's PATCH waits on for long.
"""

import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import OperationalError, transaction
from django.db.models import Q, QuerySet

from common.retention import batches_until, prune_in_batches
from pipelines.models import Pipeline
from runs import partitions, rollup
from runs.models import FINAL_STATUSES, LogLine, Run, TelemetrySample


def _scopes(field: str, default_days: int) -> list[tuple[int, Q]]:
    """(days, which runs) for the default and for each overriding value of ``field``."""
    by_days: dict[int, list[int]] = {}
    for pk, days in Pipeline.objects.filter(**{f"{field}__isnull": False}).values_list("pk", field):
        by_days.setdefault(days, []).append(pk)
    overridden = [pk for pks in by_days.values() for pk in pks]
    scopes = [(default_days, ~Q(pipeline_id__in=overridden) if overridden else Q())]
    scopes += [(days, Q(pipeline_id__in=pks)) for days, pks in sorted(by_days.items())]
    return scopes


def _logs_due(days: int, scope: Q, now: datetime) -> QuerySet[Run]:
    return Run.objects.filter(
        scope,
        finished_at__lt=now - timedelta(days=days),
        log_pruned_after_days__isnull=True,
        status__in=FINAL_STATUSES,
    )


def _runs_due(days: int, scope: Q, now: datetime) -> QuerySet[Run]:
    return Run.objects.filter(
        scope, created_at__lt=now - timedelta(days=days), status__in=FINAL_STATUSES
    )


def _partitions_drop(
    scopes: list[tuple[int, Q]], *, now: datetime, dry_run: bool, deadline: float
) -> dict[str, int]:
    """Drop the oldest ranges (``runs.partitions``) whose runs are all past their retention,
    oldest first, stopping at the first that is not (the newer ones hold newer runs)."""
    counts = {"runs with log removed": 0, "log partitions": 0}
    default_days = settings.RUN_LOG_RETENTION_DAYS
    newest = partitions.last_run_id()
    for partition in partitions.partitions():
        # A range the id sequence has not gone past may still get runs.
        if partition.upper > newest or time.monotonic() > deadline:
            break
        if not partitions.droppable(partition, scopes=scopes, default_days=default_days, now=now):
            break
        if dry_run:
            counts["log partitions"] += 1
            counts["runs with log removed"] += Run.objects.filter(
                partitions.runs_in(partition), log_pruned_after_days__isnull=True
            ).count()
            continue
        try:
            dropped = partitions.drop(partition, scopes=scopes, default_days=default_days, now=now)
        except OperationalError:
            break  # the lock was not free within its timeout: the next tick tries again
        for name, count in dropped.items():
            counts[name] += count
    return counts


def run_logs_prune(*, now: datetime, dry_run: bool, deadline: float) -> dict[str, int]:
    counts = {
        "runs with log removed": 0,
        "log partitions": 0,
        "log lines": 0,
        "telemetry samples": 0,
    }
    scopes = _scopes("log_retention_days", settings.RUN_LOG_RETENTION_DAYS)
    # Lines in a range wait for it to be dropped whole, unless their pipeline keeps them for
    # less than the default: those are deleted row by row, as are the default partition's.
    in_ranges: Q | None = None
    if partitions.partitioned():
        dropped = _partitions_drop(scopes, now=now, dry_run=dry_run, deadline=deadline)
        for name, count in dropped.items():
            counts[name] += count
        in_ranges = partitions.covered()
    for days, scope in scopes:
        due = _logs_due(days, scope, now)
        if in_ranges is not None and days >= settings.RUN_LOG_RETENTION_DAYS:
            due = due.exclude(in_ranges)
        if dry_run:
            counts["runs with log removed"] += due.count()
            counts["log lines"] += LogLine.objects.filter(run__in=due).count()
            counts["telemetry samples"] += TelemetrySample.objects.filter(run__in=due).count()
            continue
        for _ in batches_until(deadline):
            with transaction.atomic():
                ids = list(
                    due.order_by("finished_at").values_list("pk", flat=True)[
                        : settings.RETENTION_LOG_BATCH_RUNS
                    ]
                )
                if not ids:
                    break
                counts["log lines"] += LogLine.objects.filter(run_id__in=ids).delete()[0]
                counts["telemetry samples"] += TelemetrySample.objects.filter(
                    run_id__in=ids
                ).delete()[0]
                counts["runs with log removed"] += Run.objects.filter(
                    pk__in=ids, log_pruned_after_days__isnull=True
                ).update(log_pruned_after_days=days)
    return counts


def runs_prune(*, now: datetime, dry_run: bool, deadline: float) -> dict[str, int]:
    deleted = 0
    for days, scope in _scopes("run_retention_days", settings.RUN_RETENTION_DAYS):
        # The cascade takes their lines, samples, nodes, receipts and webhook events.
        deleted += prune_in_batches(
            _runs_due(days, scope, now),
            name="runs",
            order_by=("created_at", "id"),
            batch=settings.RETENTION_RUN_BATCH,
            dry_run=dry_run,
            deadline=deadline,
            # Their days' sums, if built, would still count them.
            before_delete=lambda ids: rollup.forget_runs(ids, now=now),
        )["runs"]
    return {"runs": deleted}
