"""Every write to a run. Both PATCH routes, the read API, the web app and the background jobs
change runs only through these functions, so the lifecycle rules live in one place."""

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Field
from django.utils import timezone

from common.actors import Actor, Source
from common.audit import AuditAction, audit_record
from common.errors import Conflict, InvalidInput, NotFound
from common.hooks import RunFinished, run_finished
from common.ids import is_plausible_public_id
from common.labels import MAX_LABELS, labels_checked, labels_merged
from common.roles import Perm
from common.sql import (
    append_children,
    insert_rows,
    one_statement_append_supported,
    select_joined,
    update_columns,
)
from gateways.models import Gateway
from pipelines.models import Pipeline
from runs import rollup
from runs.models import (
    ALLOWED_TRANSITIONS,
    FINAL_STATUSES,
    NODE_FINAL_STATUSES,
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


def _default_trigger_type(actor: Actor) -> str:
    """One rule for every way a run is made: a person at a page or in admin makes a manual run;
    anything through the API is an API run."""
    return TriggerType.MANUAL if actor.source in (Source.WEB, Source.ADMIN) else TriggerType.API


def run_trigger_authorize(*, actor: Actor) -> None:
    """Whether ``actor`` may make runs (the runner and operator roles); the routes that make one
    ask before they read the body."""
    actor.require(Perm.TRIGGER_RUNS, doing="making a run")


@transaction.atomic
def run_trigger(
    *,
    actor: Actor,
    pipeline: Pipeline,
    gateway: Gateway | None = None,
    trigger_type: str | None = None,
    trigger: dict[str, Any] | None = None,
    rerun_of: Run | None = None,
    labels: dict[str, Any] | None = None,
    bulk_job_id: str | None = None,
) -> Run:
    """Queue a run of ``pipeline``: the one way a run is made (the runner create route, a
    pipeline's trigger, re-runs, admin, the pages). Targets the pipeline's default gateway unless
    ``gateway`` names another; the trigger type defaults by the actor's source. Its labels are
    the pipeline's defaults overlaid with ``labels`` (a JSON object, checked here). A bulk job's
    runs carry its id (``bulk_job_id``) in their audit records."""
    run_trigger_authorize(actor=actor)
    run_labels = {**pipeline.labels, **labels_checked(labels if labels is not None else {})}
    if len(run_labels) > MAX_LABELS:
        raise InvalidInput(
            errors={
                "labels": [
                    f"At most {MAX_LABELS} labels; with the pipeline's defaults this run would "
                    f"have {len(run_labels)}."
                ]
            }
        )
    run = Run.objects.create(
        pipeline=pipeline,
        gateway=gateway if gateway is not None else pipeline.default_gateway,
        trigger_type=trigger_type or _default_trigger_type(actor),
        trigger=trigger or {},
        created_by=actor.stored_user,
        rerun_of=rerun_of,
        labels=run_labels,
    )
    details: dict[str, Any] = {"trigger": run.trigger_type}
    if rerun_of is not None:
        details["rerunOf"] = rerun_of.public_id
    if bulk_job_id is not None:
        details["bulkJobId"] = bulk_job_id
    audit_record(actor=actor, action=AuditAction.RUN_CREATED, target=run, details=details)
    return run


@transaction.atomic
def run_rerun(*, actor: Actor, run: Run, bulk_job_id: str | None = None) -> Run:
    """A new queued run of the same pipeline on the same gateway, with the same labels; only a
    finished run can be run again (re-running a run still in flight would queue a duplicate)."""
    actor.require(Perm.TRIGGER_RUNS, doing="re-running a run")
    if not run.is_final:
        raise Conflict(f"Run is {run.status}; only a finished run can be re-run.", field="status")
    new_run = run_trigger(
        actor=actor,
        pipeline=run.pipeline,
        gateway=run.gateway,
        trigger_type=TriggerType.RERUN,
        trigger={"rerunOf": run.public_id},
        rerun_of=run,
        labels=run.labels,
        bulk_job_id=bulk_job_id,
    )
    details = {"newRunId": new_run.public_id}
    if bulk_job_id is not None:
        details["bulkJobId"] = bulk_job_id
    audit_record(actor=actor, action=AuditAction.RUN_RERUN, target=run, details=details)
    return new_run


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


def _append_rows(run: Run, model, rows: list[dict[str, Any]], *, seq_field: str, cap: int) -> None:
    """Store ``rows`` after the run's last sequence number (``seq_field`` on the run) and trim
    the oldest beyond ``cap``: after a batch, or once every ``TRIM_EVERY`` single appends."""
    first = getattr(run, seq_field) + 1
    insert_rows(
        model,
        [{"run_id": run.pk, "seq": first + offset, **row} for offset, row in enumerate(rows)],
    )
    last = first + len(rows) - 1
    setattr(run, seq_field, last)
    if len(rows) > 1 or last % TRIM_EVERY == 0:
        model.objects.filter(run=run, seq__lte=last - cap).delete()


def _log_rows(entries: list[dict[str, Any]], *, now: datetime) -> list[dict[str, Any]]:
    """Log lines as rows to store, scrubbed and cut to the message limit."""
    limit = settings.RUN_LOG_MESSAGE_MAX_CHARS
    return [
        {
            "at": entry.get("at") or now,
            "level": entry["level"],
            "message": _clean_text(entry["message"], limit=limit),
            "node_id": entry.get("nodeId") or "",
        }
        for entry in entries
    ]


def _append_log_lines(run: Run, entries: list[dict[str, Any]], *, now: datetime) -> None:
    rows = _log_rows(entries, now=now)
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
    to_create: list[RunNode] = []
    to_update: list[RunNode] = []
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


def _mutable_fields() -> list[Field]:
    """The columns a write may change: every concrete field but the immutable ones."""
    return [field for field in Run._meta.concrete_fields if field.name not in Run.IMMUTABLE_FIELDS]


def _lock(**filters: Any) -> Run | None:
    """The run matching ``filters`` (column attnames) with its pipeline and gateway, locked
    until the transaction ends: the one lock of every run write (``common.sql``)."""
    return select_joined(Run, ["pipeline", "gateway"], filters=filters, lock=True)


def _write_back(run: Run) -> None:
    """Store the mutable columns of a locked run (see ``_lock``)."""
    update_columns(run, _mutable_fields())


def _close_unfinished_nodes(run: Run, *, now: datetime) -> None:
    """A final run leaves no node running: unfinished nodes are failed with a failed run and
    canceled otherwise (the run ended without them finishing), at the run's finish time. A
    runner may still backfill their real outcome."""
    status = RunStatus.FAILED if run.status == RunStatus.FAILED else RunStatus.CANCELED
    RunNode.objects.filter(run=run).exclude(status__in=NODE_FINAL_STATUSES).update(
        status=status, finished_at=run.finished_at, updated_at=now
    )


def _became_final(run: Run, *, now: datetime) -> None:
    _close_unfinished_nodes(run, now=now)
    _record_final(run)


def run_report_authorize(*, actor: Actor) -> None:
    """Whether ``actor`` may report on runs as a runner: a gateway (on its own runs, which the
    lookup ensures) or a person holding the runner role."""
    if actor.gateway is None:
        actor.require(Perm.REPORT_RUNS, doing="reporting on a run")


@transaction.atomic
def run_update(
    *, run: Run, changes: dict[str, Any], actor: Actor, idempotency_key: str | None = None
) -> Run:
    """Apply one validated PATCH to a run, all of it or none of it.

    The run row is locked for the whole transaction: transitions are checked against the
    committed status (so exactly one claimer wins), and appends get consecutive sequence numbers
    in commit order. A PATCH whose ``idempotency_key`` was already applied to this run changes
    nothing and returns the run as it is.
    """
    run_report_authorize(actor=actor)
    filters: dict[str, Any] = {"id": run.pk}
    if actor.gateway is not None:
        filters["gateway_id"] = actor.gateway.pk
    locked = _lock(**filters)
    if locked is None:
        raise NotFound("No run with this id.")
    return _apply_update(locked, changes, actor=actor, idempotency_key=idempotency_key)


# A PATCH holding only these changes (a runner streaming its log) is one statement.
_LOG_APPENDS = {"append_log", "append_logs"}


def run_update_by_public_id(
    *,
    public_id: str,
    changes: dict[str, Any],
    actor: Actor,
    idempotency_key: str | None = None,
) -> Run | None:
    """``run_update`` for the runner routes, which know the run by its public id: the run is
    found and locked in one statement. A gateway finds only runs targeted at it. None when there
    is no such run.

    The commonest PATCH, log lines and nothing else without an idempotency key, is ONE
    statement on PostgreSQL (``common.sql.append_children``: lock, insert, trim, write back),
    and so its own transaction: it changes nothing that the general path would not (no status,
    so no audit record or announcement). A run the system has closed, or no run at all, falls
    through to the general path, which refuses it the usual way."""
    run_report_authorize(actor=actor)
    if not is_plausible_public_id(public_id):
        return None
    filters: dict[str, Any] = {"public_id": public_id}
    if actor.gateway is not None:
        filters["gateway_id"] = actor.gateway.pk
    if idempotency_key is None and changes and changes.keys() <= _LOG_APPENDS:
        appended = _append_log_in_one_statement(filters, changes, actor=actor)
        if appended is not None:
            return appended
    with transaction.atomic():
        run = _lock(**filters)
        if run is None:
            return None
        return _apply_update(run, changes, actor=actor, idempotency_key=idempotency_key)


def _append_log_in_one_statement(
    filters: dict[str, Any], changes: dict[str, Any], *, actor: Actor
) -> Run | None:
    if not one_statement_append_supported():
        return None
    now = timezone.now()
    # In the general path's order: ``appendLog`` first, then ``appendLogs``.
    entries = [changes["append_log"]] if "append_log" in changes else []
    entries += changes.get("append_logs", [])
    gateway = actor.gateway
    run = append_children(
        Run,
        # A gateway's own row was just read with its token: the run is not joined to it again.
        ["pipeline"] if gateway is not None else ["pipeline", "gateway"],
        filters=filters,
        unless="finished_by_system",
        child=LogLine,
        seq_field="log_seq",
        rows=_log_rows(entries, now=now),
        cap=settings.RUN_LOG_CAP,
        trim_every=TRIM_EVERY,
        assign={"last_report_at": now, "updated_at": now},
    )
    if run is not None and gateway is not None:
        run.gateway = gateway
    return run


def _apply_update(
    run: Run, changes: dict[str, Any], *, actor: Actor, idempotency_key: str | None
) -> Run:
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
    previous_status = run.status

    if "status" in changes:
        became_final = _set_status(run, changes["status"], now=now)
    if "started_at" in changes:
        run.started_at = changes["started_at"]
    if "finished_at" in changes and (changes["finished_at"] is not None or not run.is_final):
        run.finished_at = changes["finished_at"]
    if run.started_at and run.finished_at and run.finished_at < run.started_at:
        raise InvalidInput(errors={"finishedAt": ["finishedAt is before startedAt."]})
    if "error_summary" in changes:
        summary = changes["error_summary"] or ""
        run.error_summary = _clean_text(summary, limit=settings.RUN_ERROR_SUMMARY_MAX_CHARS)
    if "labels" in changes:
        run.labels = labels_merged(run.labels, changes["labels"])
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
    if previous_status in FINAL_STATUSES:
        # A late report on a final run: the sums of its day, if built, are out of date.
        rollup.forget([(run.pipeline_id, rollup.day_of(run.created_at))], now=now)
    if run.status != previous_status:
        audit_record(
            actor=actor,
            action=AuditAction.RUN_STATUS_CHANGED,
            target=run,
            details={"from": previous_status, "to": run.status},
        )
    if became_final:
        _became_final(run, now=now)
    return run


@transaction.atomic
def run_cancel(*, run: Run, actor: Actor, bulk_job_id: str | None = None) -> Run:
    """Cancel a queued run at once; ask a running one to stop; refuse a final one (409). A bulk
    job's cancels carry its id (``bulk_job_id``) in their audit records."""
    actor.require(Perm.CANCEL_RUNS, doing="cancelling a run")
    locked = _lock(id=run.pk)
    if locked is None:
        raise NotFound("No run with this id.")
    run = locked
    now = timezone.now()
    if run.is_final:
        raise Conflict(f"Run is already {run.status}; there is nothing to cancel.", field="status")
    if run.status == RunStatus.CANCEL_REQUESTED:
        return run
    target = RunStatus.CANCELED if run.status == RunStatus.QUEUED else RunStatus.CANCEL_REQUESTED
    became_final = _set_status(run, target, now=now)
    run.updated_at = now
    _write_back(run)
    details = {"status": run.status}
    if bulk_job_id is not None:
        details["bulkJobId"] = bulk_job_id
    audit_record(actor=actor, action=AuditAction.RUN_CANCEL_REQUESTED, target=run, details=details)
    if became_final:
        _became_final(run, now=now)
    return run


def _finish_by_system(
    run: Run, *, status: str, error_summary: str, log_level: str, log_message: str
) -> Run:
    """Close a locked run on the system's behalf, say why in its log, and record it."""
    now = timezone.now()
    _set_status(run, status, now=now)
    run.error_summary = _clean_text(error_summary, limit=settings.RUN_ERROR_SUMMARY_MAX_CHARS)
    run.finished_by_system = True
    run.updated_at = now
    _append_log_lines(run, [{"level": log_level, "message": log_message}], now=now)
    _write_back(run)
    audit_record(
        actor=Actor.system(),
        action=AuditAction.RUN_FINISHED_BY_SYSTEM,
        target=run,
        details={"status": run.status, "reason": run.error_summary},
    )
    _became_final(run, now=now)
    return run


def lost_run_error(silence: timedelta) -> str:
    return f"runner lost: no report for {int(silence.total_seconds() // 60)} minutes"


def _lease(run: Run) -> timedelta:
    seconds = run.gateway.lease_seconds if run.gateway else settings.GATEWAY_DEFAULT_LEASE_SECONDS
    return timedelta(seconds=seconds)


@transaction.atomic
def run_fail_if_lost(*, run_pk: int, now: datetime) -> Run | None:
    """Fail a running (or cancel-requested) run whose runner has not reported for longer than its
    gateway's lease. Re-checked under the run's lock: a report that committed since the caller
    looked renews the lease, and a final status makes the run none of our business. None when
    nothing was done."""
    run = _lock(id=run_pk, status=[RunStatus.RUNNING, RunStatus.CANCEL_REQUESTED])
    if run is None:
        return None
    silence = now - (run.last_report_at or run.started_at or run.created_at)
    if silence <= _lease(run):
        return None
    return _finish_by_system(
        run,
        status=RunStatus.FAILED,
        error_summary=lost_run_error(silence),
        log_level="error",
        log_message=f"Failed by the control plane: no report from the runner for "
        f"{_duration_words(silence)}, longer than the gateway's lease of "
        f"{_duration_words(_lease(run))}.",
    )


def _duration_words(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    return f"{seconds} seconds" if seconds < 120 else f"{seconds // 60} minutes"


@transaction.atomic
def run_cancel_if_unconfirmed(*, run_pk: int, now: datetime) -> Run | None:
    """Mark ``canceled`` a run whose runner has not confirmed a cancel within
    ``RUN_CANCEL_GRACE_SECONDS``; None when it has since finished or the grace has not lapsed."""
    grace = timedelta(seconds=settings.RUN_CANCEL_GRACE_SECONDS)
    run = _lock(id=run_pk, status=RunStatus.CANCEL_REQUESTED)
    if run is None or run.cancel_requested_at is None or run.cancel_requested_at >= now - grace:
        return None
    return _finish_by_system(
        run,
        status=RunStatus.CANCELED,
        error_summary="canceled by the system: the runner did not confirm the cancel within "
        f"{_duration_words(grace)}",
        log_level="warn",
        log_message="Canceled by the control plane: the runner did not confirm the cancel "
        f"within {_duration_words(grace)} of the request.",
    )
