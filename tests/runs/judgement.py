"""Helpers to report runs with exact timings through the runner API, as a gateway would."""

from datetime import UTC, datetime, timedelta

from tests.factories import RunFactory

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


def iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def report_run(
    agent_client,
    pipeline,
    *,
    start: datetime,
    seconds: float,
    status: str = "succeeded",
    rows: int | None = None,
    size: int | None = None,
    nodes: list[dict] | None = None,
    error: str | None = None,
):
    """Queue a run created at ``start`` and report it from running to ``status`` with exactly
    ``seconds`` between ``startedAt`` and ``finishedAt``."""
    run = RunFactory(pipeline=pipeline, created_at=start)
    path = f"/api/agent/runs/{run.public_id}"
    claimed = agent_client.patch(
        path, {"status": "running", "startedAt": iso(start)}, format="json"
    )
    assert claimed.status_code == 200, claimed.content
    body: dict = {"status": status, "finishedAt": iso(start + timedelta(seconds=seconds))}
    summary = {}
    if rows is not None:
        summary["rowsLoaded"] = rows
    if size is not None:
        summary["bytesLoaded"] = size
    if summary:
        body["telemetrySummary"] = summary
    if nodes is not None:
        body["nodes"] = nodes
    if error is not None:
        body["errorSummary"] = error
    finished = agent_client.patch(path, body, format="json")
    assert finished.status_code == 200, finished.content
    run.refresh_from_db()
    return run


def node(node_id: str, start: datetime, seconds: float, rows: int | None = None) -> dict:
    body = {
        "nodeId": node_id,
        "type": "task",
        "status": "succeeded",
        "startedAt": iso(start),
        "finishedAt": iso(start + timedelta(seconds=seconds)),
    }
    if rows is not None:
        body["metrics"] = {"rowsLoaded": rows}
    return body
