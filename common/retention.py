"""Retention: what is kept how long, and the pruning that holds it (README "Retention").

Each app prunes its own tables; ``settings.RETENTION_JOBS`` names them by dotted path, in order
(so that this module, like every module of ``common``, imports none of the apps). A job takes
``now``, ``dry_run`` and a ``deadline`` (``time.monotonic()``), works in small batches (one short
transaction each, so no lock is held for long and no table is rewritten), stops at the
deadline, and answers what it deleted, or with ``dry_run`` what it would delete, by name.
"""

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.module_loading import import_string
from django_tasks_db.models import DBTaskResult

from common.models import AuditEvent


def prune(*, dry_run: bool = False, seconds: float | None = None) -> dict[str, int]:
    """Run every retention job until done (or ``seconds`` are spent); answers the counts."""
    now = timezone.now()
    budget = settings.RETENTION_MAX_SECONDS if seconds is None else seconds
    deadline = time.monotonic() + budget
    counts: dict[str, int] = {}
    for path in settings.RETENTION_JOBS:
        for name, count in import_string(path)(now=now, dry_run=dry_run, deadline=deadline).items():
            counts[name] = counts.get(name, 0) + count
    return counts


def batches_until(deadline: float):
    """Yield until the deadline, pausing a moment between batches so others get the locks."""
    first = True
    while first or time.monotonic() < deadline:
        if not first:
            time.sleep(settings.RETENTION_BATCH_PAUSE_SECONDS)
        first = False
        yield


def prune_in_batches(
    old: QuerySet,
    *,
    name: str,
    order_by: tuple[str, ...],
    batch: int,
    dry_run: bool,
    deadline: float,
    before_delete: Callable[[list[Any]], None] | None = None,
) -> dict[str, int]:
    """Delete the rows of ``old``, oldest first by ``order_by``, ``batch`` at a time (each in a
    short transaction of its own, in which ``before_delete`` first gets the batch's primary
    keys) until none is left or the deadline passes; with ``dry_run``, count them instead.
    Answers ``{name: rows}``."""
    if dry_run:
        return {name: old.count()}
    deleted = 0
    for _ in batches_until(deadline):
        with transaction.atomic():
            ids = list(old.order_by(*order_by).values_list("pk", flat=True)[:batch])
            if not ids:
                break
            if before_delete is not None:
                before_delete(ids)
            old.model.objects.filter(pk__in=ids).delete()
            deleted += len(ids)
    return {name: deleted}


def audit_events_prune(*, now: datetime, dry_run: bool, deadline: float) -> dict[str, int]:
    cutoff = now - timedelta(days=settings.AUDIT_RETENTION_DAYS)
    return prune_in_batches(
        AuditEvent.objects.filter(created_at__lt=cutoff),
        name="audit events",
        order_by=("created_at",),
        batch=1000,
        dry_run=dry_run,
        deadline=deadline,
    )


def task_results_prune(*, now: datetime, dry_run: bool, deadline: float) -> dict[str, int]:
    """Finished background-task results (every webhook attempt and clock tick leaves one),
    after ``TASK_RESULT_RETENTION_DAYS``. Queued and running tasks are never touched."""
    cutoff = now - timedelta(days=settings.TASK_RESULT_RETENTION_DAYS)
    # By primary key: the results' ids, not their finish times, are indexed.
    return prune_in_batches(
        DBTaskResult.objects.filter(finished_at__lt=cutoff),
        name="task results",
        order_by=("pk",),
        batch=1000,
        dry_run=dry_run,
        deadline=deadline,
    )
