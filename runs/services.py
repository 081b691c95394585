"""Every write to a run. Both PATCH routes, the read API, the web app and the background jobs
change runs only through these functions, so the lifecycle rules live in one place."""

from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from rest_framework.exceptions import ValidationError

from common.errors import Conflict
from common.hooks import RunFinished, run_finished
from common.ids import is_plausible_public_id
from common.sql import select_joined
from gateways.models import Gateway
from pipelines.models import Pipeline
from runs.models import (
    ALLOWED_TRANSITIONS,
    FINAL_STATUSES,
    LogLine,
    PatchReceipt,
    Run,
    RunNode,
    RunStatus,
    TelemetrySample,
    TriggerType,
)
from runs.representations import run_event_data
from runs.scrubbing import scrub

# Physical trimming runs once per this many appends; reads already cut at the cap exactly.
TRIM_EVERY = 100
TRUNCATED_SUFFIX = " … [truncated]"


def _clean_text(text: str, *, limit: int) -> str:
    """Scrub first, so that truncation can never leave half a secret behind."""
    cleaned = scrub(text)
    if len(cleaned) > limit:
        cleaned = cleaned[: limit - len(TRUNCATED_SUFFIX)] + TRUNCATED_SUFFIX
    return cleaned


def run_create(
    *,
    pipeline: Pipeline,
    gateway: Gateway | None = None,
    trigger_type: str = TriggerType.API,
    trigger: dict[str, Any] | None = None,
    created_by=None,
    rerun_of: Run | None = None,
) -> Run:
    return Run.objects.create(
        pipeline=pipeline,
        gateway=gateway if gateway is not None else pipeline.default_gateway,
        trigger_type=trigger_type,
        trigger=trigger or {},
        created_by=created_by if getattr(created_by, "pk", None) else None,
        rerun_of=rerun_of,
    )


def run_rerun(*, run: Run, created_by=None) -> Run:
    return run_create(
        pipeline=run.pipeline,
        gateway=run.gateway,
        trigger_type=TriggerType.RERUN,
        trigger={"rerunOf": run.public_id},
        created_by=created_by,
        rerun_of=run,
    )


def _set_status(run: Run, new_status: str, *, now: datetime) -> bool:
    """Apply a transition to the locked run; True when the run has just become final."""
    if new_status == run.status:
        if new_status == RunStatus.RUNNING:
            # A second `running` is a second claim: the first claimer owns the run.
            raise Conflict(
                "Run is already running: it was claimed by another runner.", field="status"
            )
        return False
    if new_status not in ALLOWED_TRANSITIONS[run.status]:
        raise Conflict(f"Cannot move a run from {run.status} to {new_status}.", field="status")
    run.status = new_status
    if new_status == RunStatus.RUNNING and run.started_at is None:
        run.started_at = now
    if new_status == RunStatus.CANCEL_REQUESTED:
        run.cancel_requested_at = now
    if new_status in FINAL_STATUSES:
        if run.finished_at is None:
            run.finished_at = now
        return True
    return False


def _insert(model, rows: list[dict[str, Any]]) -> None:
    """INSERT ``rows`` (dicts with the same keys, field attnames) in plain SQL: ``bulk_create``
    compiles its statement anew on every call, which costs more than storing one log line."""
    fields = [model._meta.get_field(name) for name in rows[0]]
    quote = connection.ops.quote_name
    head = (
        f"INSERT INTO {quote(model._meta.db_table)} "  # noqa: S608
        f"({', '.join(quote(field.column) for field in fields)}) VALUES "
    )
    row_sql = "(" + ", ".join(["%s"] * len(fields)) + ")"
    batch = connection.ops.bulk_batch_size(fields, rows) or len(rows)
    with connection.cursor() as cursor:
        for start in range(0, len(rows), batch):
            chunk = rows[start : start + batch]
            params = [
                field.get_db_prep_save(row[field.attname], connection)
                for row in chunk
                for field in fields
            ]
            cursor.execute(head + ", ".join([row_sql] * len(chunk)), params)


def _append_rows(run: Run, model, rows: list[dict[str, Any]], *, seq_field: str, cap: int) -> None:
    """Store ``rows`` after the run's last sequence number (``seq_field`` on the run) and trim
    the oldest beyond ``cap``: after a batch, or once every ``TRIM_EVERY`` single appends."""
    first = getattr(run, seq_field) + 1
    _insert(
        model,
        [{"run_id": run.pk, "seq": first + offset, **row} for offset, row in enumerate(rows)],
    )
    last = first + len(rows) - 1
    setattr(run, seq_field, last)
    if len(rows) > 1 or last % TRIM_EVERY == 0:
        model.objects.filter(run=run, seq__lte=last - cap).delete()


def _append_log_lines(run: Run, entries: list[dict[str, Any]], *, now: datetime) -> None:
    limit = settings.RUN_LOG_MESSAGE_MAX_CHARS
    rows = [
        {
            "at": entry.get("at") or now,
            "level": entry["level"],
            "message": _clean_text(entry["message"], limit=limit),
            "node_id": entry.get("nodeId") or "",
        }
        for entry in entries
    ]
    _append_rows(run, LogLine, rows, seq_field="log_seq", cap=settings.RUN_LOG_CAP)


def _append_samples(run: Run, samples: list[dict[str, Any]], *, now: datetime) -> None:
    rows = [
        {
            "at": sample.get("at") or now,
            "values": {key: value for key, value in sample.items() if key != "at"},
        }
        for sample in samples
    ]
    _append_rows(run, TelemetrySample, rows, seq_field="sample_seq", cap=settings.RUN_SAMPLE_CAP)


def _scrub_strings(values: dict[str, Any]) -> dict[str, Any]:
    return {key: scrub(value) if isinstance(value, str) else value for key, value in values.items()}


def _merge_summary(run: Run, summary: dict[str, Any]) -> None:
    merged = {**run.telemetry_summary, **_scrub_strings(summary)}
    run.telemetry_summary = merged
    run.rows_loaded = merged.get("rowsLoaded")
    run.bytes_loaded = merged.get("bytesLoaded")
    run.progress = merged.get("progress")


def _upsert_nodes(run: Run, nodes: list[dict[str, Any]], *, now: datetime) -> None:
    existing = {node.node_id: node for node in RunNode.objects.filter(run=run)}
    fields = {
        "type": "type",
        "status": "status",
        "startedAt": "started_at",
        "finishedAt": "finished_at",
        "retries": "retries",
        "metrics": "metrics",
    }
    to_create, to_update = [], []
    for data in nodes:
        node = existing.get(data["nodeId"]) or RunNode(run=run, node_id=data["nodeId"])
        for key, attr in fields.items():
            if key in data:
                value = data[key]
                setattr(node, attr, _scrub_strings(value) if key == "metrics" else value)
        node.updated_at = now
        (to_update if node.pk else to_create).append(node)
    RunNode.objects.bulk_create(to_create)
    if to_update:
        RunNode.objects.bulk_update(to_update, [*fields.values(), "updated_at"])


def run_finished_event(run: Run) -> RunFinished:
    return RunFinished(
        run_pk=run.pk,
        run_id=run.public_id,
        pipeline_pk=run.pipeline_id,
        status=run.status,
        data=run_event_data(run),
    )


def _record_final(run: Run) -> None:
    """Announce, inside the transaction, a run that has just become final (the webhooks app
    records its outbox event then, atomically with the status)."""
    run_finished.send(run_finished_event(run))


# Every column a write may change. Ids, pipeline, gateway, trigger and creation never change
# after run_create, so the write-back stores only these.
RUN_UPDATE_FIELDS = [
    "status",
    "finished_by_system",
    "started_at",
    "finished_at",
    "cancel_requested_at",
    "error_summary",
    "telemetry_summary",
    "rows_loaded",
    "bytes_loaded",
    "progress",
    "log_seq",
    "sample_seq",
    "last_report_at",
    "updated_at",
]


def _mutable_fields() -> list:
    return [Run._meta.get_field(name) for name in RUN_UPDATE_FIELDS]


def _select_locked(where: str, params: list[Any]) -> Run | None:
    """The run (alias ``t``) with its pipeline and gateway, as ``run_queryset()`` loads them,
    in one statement that locks the run row until the transaction ends.

    Runners PATCH every few seconds, so this and ``_write_back`` are the hottest statements of
    the app; they are plain SQL (see ``common.sql``).

    ``FOR NO KEY UPDATE`` serializes writers of the row exactly like ``FOR UPDATE`` but does not
    block transactions that only insert rows referencing it.
    """
    lock = (
        connection.ops.for_update_sql(
            no_key=connection.features.has_select_for_no_key_update,
            of=("t",) if connection.features.has_select_for_update_of else (),
        )
        if connection.features.has_select_for_update
        else ""
    )
    return select_joined(Run, ["pipeline", "gateway"], where, params, suffix=lock)


def _lock(run: Run) -> Run:
    """A fresh copy of ``run`` under a row lock; the caller's instance is left as it was, as
    when the transaction rolls back."""
    locked = _select_locked("t.id = %s", [run.pk])
    if locked is None:
        raise Run.DoesNotExist(f"Run {run.pk} no longer exists.")
    return locked


def _lock_by_public_id(public_id: str, *, gateway: Gateway | None) -> Run | None:
    if not is_plausible_public_id(public_id):
        return None
    if gateway is None:
        return _select_locked("t.public_id = %s", [public_id])
    return _select_locked("t.public_id = %s AND t.gateway_id = %s", [public_id, gateway.pk])


def _write_back(run: Run) -> None:
    """Store the mutable columns of a locked run (see ``_lock``)."""
    fields = _mutable_fields()
    assignments = ", ".join(f"{connection.ops.quote_name(field.column)} = %s" for field in fields)
    params = [field.get_db_prep_save(getattr(run, field.attname), connection) for field in fields]
    table = connection.ops.quote_name(Run._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET {assignments} WHERE id = %s", [*params, run.pk])  # noqa: S608


@transaction.atomic
def run_update(
    *, run: Run, changes: dict[str, Any], actor: Any = None, idempotency_key: str | None = None
) -> Run:
    """Apply one validated PATCH to a run, all of it or none of it.

    The run row is locked for the whole transaction: transitions are checked against the
    committed status (so exactly one claimer wins), and appends get consecutive sequence numbers
    in commit order. A PATCH whose ``idempotency_key`` was already applied to this run changes
    nothing and returns the run as it is.
    """
    return _apply_update(_lock(run), changes, idempotency_key=idempotency_key)


@transaction.atomic
def run_update_by_public_id(
    *,
    public_id: str,
    gateway: Gateway | None = None,
    changes: dict[str, Any],
    actor: Any = None,
    idempotency_key: str | None = None,
) -> Run | None:
    """``run_update`` for the runner routes, which know the run by its public id: the run is
    found and locked in one statement. With ``gateway``, only a run targeted at it is found.
    None when there is no such run."""
    run = _lock_by_public_id(public_id, gateway=gateway)
    if run is None:
        return None
    return _apply_update(run, changes, idempotency_key=idempotency_key)


def _apply_update(run: Run, changes: dict[str, Any], *, idempotency_key: str | None) -> Run:
    now = timezone.now()
    if run.finished_by_system:
        if changes == {"status": run.status}:
            return run  # the runner agrees with how the system closed the run: a no-op
        raise Conflict(
            f"Run was {run.status} by the system ({run.error_summary or 'cancel not confirmed'}); "
            "this report came too late and was not stored.",
            field="status",
        )
    if idempotency_key is not None:
        if PatchReceipt.objects.filter(run=run, key=idempotency_key).exists():
            return run
        PatchReceipt.objects.create(run=run, key=idempotency_key, created_at=now)
    became_final = False

    if "status" in changes:
        became_final = _set_status(run, changes["status"], now=now)
    if "started_at" in changes:
        run.started_at = changes["started_at"]
    if "finished_at" in changes and (changes["finished_at"] is not None or not run.is_final):
        run.finished_at = changes["finished_at"]
    if run.started_at and run.finished_at and run.finished_at < run.started_at:
        raise ValidationError({"finishedAt": ["finishedAt is before startedAt."]})
    if "error_summary" in changes:
        summary = changes["error_summary"] or ""
        run.error_summary = _clean_text(summary, limit=settings.RUN_ERROR_SUMMARY_MAX_CHARS)
    if "telemetry_summary" in changes:
        _merge_summary(run, changes["telemetry_summary"])
    if "log_entries" in changes:
        LogLine.objects.filter(run=run).delete()
        entries = changes["log_entries"][-settings.RUN_LOG_CAP :]
        if entries:
            _append_log_lines(run, entries, now=now)
    if "append_log" in changes:
        _append_log_lines(run, [changes["append_log"]], now=now)
    if "append_logs" in changes:
        _append_log_lines(run, changes["append_logs"], now=now)
    if "telemetry_samples" in changes:
        TelemetrySample.objects.filter(run=run).delete()
        samples = changes["telemetry_samples"][-settings.RUN_SAMPLE_CAP :]
        if samples:
            _append_samples(run, samples, now=now)
    if "append_telemetry_sample" in changes:
        _append_samples(run, [changes["append_telemetry_sample"]], now=now)
    if "append_telemetry_samples" in changes:
        _append_samples(run, changes["append_telemetry_samples"], now=now)
    if "nodes" in changes:
        _upsert_nodes(run, changes["nodes"], now=now)

    run.last_report_at = now
    run.updated_at = now
    _write_back(run)
    if became_final:
        _record_final(run)
    return run


@transaction.atomic
def run_cancel(*, run: Run, actor: Any = None) -> Run:
    """Cancel a queued run at once; ask a running one to stop; refuse a final one (409)."""
    run = _lock(run)
    now = timezone.now()
    if run.is_final:
        raise Conflict(f"Run is already {run.status}; there is nothing to cancel.", field="status")
    if run.status == RunStatus.CANCEL_REQUESTED:
        return run
    target = RunStatus.CANCELED if run.status == RunStatus.QUEUED else RunStatus.CANCEL_REQUESTED
    became_final = _set_status(run, target, now=now)
    run.updated_at = now
    run.save(update_fields=["status", "finished_at", "cancel_requested_at", "updated_at"])
    if became_final:
        _record_final(run)
    return run


@transaction.atomic
def run_finish_by_system(
    *, run_pk: int, expected_status: str, status: str, error_summary: str = ""
) -> Run | None:
    """Finish a run on the system's behalf (lost runner, unconfirmed cancel).

    Conditional on the status the caller saw: when a runner's own final PATCH commits first, or
    another job got there first, nothing happens and None is returned.
    """
    run = (
        Run.objects.select_for_update(of=("self",))
        .select_related("pipeline", "gateway")
        .filter(pk=run_pk, status=expected_status)
        .first()
    )
    if run is None:
        return None
    now = timezone.now()
    _set_status(run, status, now=now)
    if error_summary:
        run.error_summary = _clean_text(error_summary, limit=settings.RUN_ERROR_SUMMARY_MAX_CHARS)
    run.finished_by_system = True
    run.updated_at = now
    run.save(
        update_fields=["status", "finished_at", "error_summary", "finished_by_system", "updated_at"]
    )
    _record_final(run)
    return run
