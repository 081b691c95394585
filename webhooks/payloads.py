"""Webhook bodies, rendered once to the exact text that is signed, stored and resent."""

import json
from datetime import UTC, datetime
from typing import Any

from runs.models import Run
from runs.scrubbing import scrub
from webhooks.models import TEST_EVENT_TYPE


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def run_data(run: Run) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": run.public_id,
        "pipelineId": run.pipeline.public_id,
        "pipelineName": run.pipeline.name,
        "gateway": (
            {"id": run.gateway.public_id, "name": run.gateway.name} if run.gateway_id else None
        ),
        "status": run.status,
        "trigger": {"type": run.trigger_type, **(run.trigger or {})},
        "createdAt": iso(run.created_at),
        "startedAt": iso(run.started_at),
        "finishedAt": iso(run.finished_at),
        "durationSeconds": run.duration_seconds,
        # Stored summaries are scrubbed already; scrubbing again costs little and keeps a
        # credential out of a third party's inbox should a write ever skip it.
        "errorSummary": scrub(run.error_summary) if run.error_summary else None,
    }
    if run.telemetry_summary:
        data["telemetrySummary"] = run.telemetry_summary
    return data


def render(*, event_type: str, at: datetime, data: dict[str, Any]) -> str:
    return json.dumps(
        {"type": event_type, "timestamp": iso(at), "data": data},
        separators=(",", ":"),
        ensure_ascii=False,
    )


def run_event_body(*, run: Run, event_type: str, at: datetime) -> str:
    return render(event_type=event_type, at=at, data=run_data(run))


def test_event_body(*, endpoint_public_id: str, at: datetime) -> str:
    data = {
        "endpointId": endpoint_public_id,
        "message": "A test event: this endpoint is reachable and verifies signatures.",
    }
    return render(event_type=TEST_EVENT_TYPE, at=at, data=data)
