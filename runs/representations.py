"""The run as the runner routes and the webhooks carry it: plain functions over a loaded run, so a
runner's PATCH answer costs little more than its bytes."""

from typing import Any

from common.time import iso
from runs.models import Run, RunNode
from runs.scrubbing import scrub


def trigger_repr(run: Run) -> dict[str, Any]:
    """``{type, ...details}``; the run's trigger type wins over a ``type`` among the details."""
    details = {key: value for key, value in run.trigger.items() if key != "type"}
    return {"type": run.trigger_type, **details}


def gateway_repr(run: Run) -> dict[str, str] | None:
    gateway = run.gateway
    if gateway is None:
        return None
    return {"id": gateway.public_id, "name": gateway.name}


def log_line_repr(line) -> dict[str, Any]:
    entry = {"at": iso(line.at), "level": line.level, "message": line.message}
    if line.node_id:
        entry["nodeId"] = line.node_id
    return entry


def sample_repr(sample) -> dict[str, Any]:
    return {"at": iso(sample.at), **sample.values}


def log_rows_repr(rows) -> list[dict[str, Any]]:
    """``(at, level, message, node_id)`` rows (``selectors.run_log_rows``) as the runner routes
    return them, in one pass: the same entries as ``log_line_repr``."""
    entries = []
    append = entries.append
    for at, level, message, node_id in rows:
        entry = {"at": iso(at), "level": level, "message": message}
        if node_id:
            entry["nodeId"] = node_id
        append(entry)
    return entries


def sample_rows_repr(rows) -> list[dict[str, Any]]:
    """``(at, values)`` rows (``selectors.run_sample_rows``): the same points as ``sample_repr``."""
    return [{"at": iso(at), **values} for at, values in rows]


def node_repr(node: RunNode) -> dict[str, Any]:
    return {
        "nodeId": node.node_id,
        "type": node.type,
        "status": node.status,
        "startedAt": iso(node.started_at),
        "finishedAt": iso(node.finished_at),
        "retries": node.retries,
        "metrics": node.metrics,
    }


def run_core_repr(run: Run) -> dict[str, Any]:
    """What every shape of a run carries: the runner routes' and the announcements'."""
    return {
        "id": run.public_id,
        "pipelineId": run.pipeline.public_id,
        "pipelineName": run.pipeline.name,
        "gateway": gateway_repr(run),
        "status": run.status,
        "trigger": trigger_repr(run),
        "createdAt": iso(run.created_at),
        "startedAt": iso(run.started_at),
        "finishedAt": iso(run.finished_at),
        "durationSeconds": run.duration_seconds,
        "errorSummary": run.error_summary or None,
    }


def runner_run_repr(run: Run, *, logs=None, samples=None, nodes=None) -> dict[str, Any]:
    """The run as GET, POST and every PATCH of the runner routes return it.

    ``logs`` and ``samples`` are rows of ``selectors.run_log_rows`` and ``run_sample_rows``;
    lists passed as None are left out (the agent poll list and minimal answers are light).
    """
    body = run_core_repr(run)
    if logs is not None:
        body["logEntries"] = log_rows_repr(logs)
    body["telemetry"] = {"summary": run.telemetry_summary}
    if samples is not None:
        body["telemetry"]["samples"] = sample_rows_repr(samples)
    if nodes is not None:
        body["nodes"] = [node_repr(node) for node in nodes]
    return body


def run_event_data(run: Run) -> dict[str, Any]:
    """The run as announcements (webhook bodies) carry it."""
    data = run_core_repr(run)
    if run.error_summary:
        # Stored summaries are scrubbed already; scrubbing again costs little and keeps a
        # credential out of a third party's inbox should a write ever skip it.
        data["errorSummary"] = scrub(run.error_summary)
    if run.telemetry_summary:
        data["telemetrySummary"] = run.telemetry_summary
    return data
