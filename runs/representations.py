"""The run as the runner routes and the webhooks carry it: plain functions over a loaded run, so a
runner's PATCH answer costs little more than its bytes.

The shapes are declared once, as the ``TypedDict`` return types of the functions that build
them; the OpenAPI schema of the runner routes is generated from those declarations
(``runs.api.schema``), so the published shape is the rendered one.
"""

from typing import Annotated, Any, Literal, NotRequired, TypedDict, cast

from common.sql import RawJSON
from common.time import iso
from runs.models import LogLevel, Run, RunNode, RunStatus, TriggerType
from runs.scrubbing import scrub

# An instant as ``common.time.iso`` writes it; the annotation is the schema's.
Instant = Annotated[str, {"format": "date-time"}]


class RunGateway(TypedDict):
    id: str
    name: str


class LogEntry(TypedDict):
    at: Instant
    level: LogLevel
    message: str
    nodeId: NotRequired[str]


TelemetryPoint = Annotated[
    dict[str, Any],
    {
        "type": "object",
        "properties": {"at": {"type": "string", "format": "date-time"}},
        "required": ["at"],
        "additionalProperties": {"type": "number"},
    },
]


class Telemetry(TypedDict):
    summary: Annotated[dict[str, Any], {"additionalProperties": True}]
    samples: NotRequired[list[TelemetryPoint]]


class Node(TypedDict):
    nodeId: str
    type: str
    status: str
    startedAt: Instant | None
    finishedAt: Instant | None
    retries: int
    metrics: dict[str, Any]


class RunCore(TypedDict):
    id: str
    pipelineId: str
    pipelineName: str
    gateway: RunGateway | None
    status: RunStatus
    trigger: Annotated[dict[str, Any], {"description": "{type, ...details}"}]
    createdAt: Instant
    startedAt: Instant | None
    finishedAt: Instant | None
    durationSeconds: int | None
    errorSummary: str | None
    labels: Annotated[dict[str, str], {"description": "String keys to string values."}]


class RunnerRun(RunCore):
    """A run as the runner routes return it; ``logEntries``, the telemetry's ``samples`` and
    ``nodes`` are left out of minimal answers (``Prefer: return=minimal``) and the poll list."""

    logEntries: NotRequired[list[LogEntry]]
    telemetry: Telemetry
    nodes: NotRequired[list[Node]]


class AgentGateway(TypedDict):
    id: str
    name: str
    leaseSeconds: Annotated[
        int, {"description": "A running run with no report for this long is failed as lost."}
    ]


class AgentMeta(TypedDict):
    gateway: AgentGateway


class AgentRunList(TypedDict):
    """The gateway's poll: its queued runs and the runs it is asked to cancel."""

    data: list[RunnerRun]
    meta: AgentMeta


class RunRow(TypedDict):
    """A light run: no logs, no samples, no summary (a list item, an export line)."""

    id: str
    pipelineId: str
    pipelineName: str
    gatewayId: str | None
    status: RunStatus
    trigger: TriggerType
    createdAt: Instant
    startedAt: Instant | None
    finishedAt: Instant | None
    durationSeconds: int | None
    rowsLoaded: int | None
    bytesLoaded: int | None
    labels: Annotated[dict[str, str], {"description": "String keys to string values."}]


class Eta(TypedDict):
    at: Instant
    basis: Annotated[
        Literal["progress", "baseline"],
        {
            "description": "`progress`: from the progress rate so far; `baseline`: the "
            "baseline's median duration after the start."
        },
    ]


class RunListItem(RunRow):
    """A light run: no logs, no samples, no summary; ``eta`` while it runs."""

    eta: Eta | None


class RunPageMeta(TypedDict):
    cursor: Annotated[
        str | None,
        {
            "description": "Pass as `cursor` (with the same filters and `sort`) for the next "
            "page; null on the last page."
        },
    ]
    sort: Annotated[str, {"description": "The order of the pages."}]
    total: NotRequired[
        Annotated[int, {"description": "How many runs match, when at most 10,000 do."}]
    ]
    totalAtLeast: NotRequired[
        Annotated[
            int,
            {
                "description": "10000 when more than 10,000 runs match (then `total` is "
                "absent): the count stops there so that it stays cheap at millions of runs."
            },
        ]
    ]


class RunPage(TypedDict):
    data: list[RunListItem]
    meta: RunPageMeta


def eta_repr(eta) -> Eta | None:
    """A running run's ``runs.stats.Eta``."""
    if eta is None:
        return None
    return {"at": cast(str, iso(eta.at)), "basis": eta.basis}


def trigger_repr(run: Run) -> dict[str, Any]:
    """``{type, ...details}``; the run's trigger type wins over a ``type`` among the details."""
    details = {key: value for key, value in run.trigger.items() if key != "type"}
    return {"type": run.trigger_type, **details}


def gateway_repr(run: Run) -> RunGateway | None:
    gateway = run.gateway
    if gateway is None:
        return None
    return {"id": gateway.public_id, "name": gateway.name}


def sample_repr(sample) -> dict[str, Any]:
    return {"at": iso(sample.at), **sample.values}


def log_rows_repr(rows) -> list[LogEntry]:
    """``(at, level, message, node_id)`` rows (``selectors.run_log_rows``) as the runner routes
    return them, in one pass."""
    entries: list[LogEntry] = []
    append = entries.append
    for at, level, message, node_id in rows:
        entry: LogEntry = {"at": iso(at) or "", "level": level, "message": message}
        if node_id:
            entry["nodeId"] = node_id
        append(entry)
    return entries


def sample_rows_repr(rows) -> list[dict[str, Any]]:
    """``(at, values)`` rows (``selectors.run_sample_rows``): the same points as ``sample_repr``."""
    return [{"at": iso(at), **values} for at, values in rows]


def node_repr(node: RunNode) -> Node:
    return {
        "nodeId": node.node_id,
        "type": node.type,
        "status": node.status,
        "startedAt": iso(node.started_at),
        "finishedAt": iso(node.finished_at),
        "retries": node.retries,
        "metrics": node.metrics,
    }


def run_core_repr(run: Run) -> RunCore:
    """What every shape of a run carries: the runner routes' and the announcements'."""
    return {
        "id": run.public_id,
        "pipelineId": run.pipeline.public_id,
        "pipelineName": run.pipeline.name,
        "gateway": gateway_repr(run),
        "status": RunStatus(run.status),
        "trigger": trigger_repr(run),
        "createdAt": iso(run.created_at) or "",
        "startedAt": iso(run.started_at),
        "finishedAt": iso(run.finished_at),
        "durationSeconds": run.duration_seconds,
        "errorSummary": run.error_summary or None,
        "labels": run.labels,
    }


def runner_run_repr(run: Run, *, logs=None, samples=None, nodes=None) -> RunnerRun:
    """The run as GET, POST and every PATCH of the runner routes return it.

    ``logs`` and ``samples`` are rows of ``selectors.run_log_rows`` and ``run_sample_rows``, or
    the same arrays as JSON the database wrote (``selectors.run_log_json``, ``run_samples_json``);
    lists passed as None are left out (the agent poll list and minimal answers are light).
    """
    # Built in the order the answer has always had: the core, the log, the telemetry, the nodes.
    body = cast(RunnerRun, run_core_repr(run))
    if logs is not None:
        # RawJSON is rendered as the very list it holds.
        body["logEntries"] = (
            cast(list[LogEntry], logs) if isinstance(logs, RawJSON) else log_rows_repr(logs)
        )
    body["telemetry"] = {"summary": run.telemetry_summary}
    if samples is not None:
        body["telemetry"]["samples"] = (
            cast(list[TelemetryPoint], samples)
            if isinstance(samples, RawJSON)
            else sample_rows_repr(samples)
        )
    if nodes is not None:
        body["nodes"] = [node_repr(node) for node in nodes]
    return body


def agent_run_list_repr(*, gateway: Any, runs) -> AgentRunList:
    """What a gateway's poll returns (``GET /api/agent/runs``)."""
    return {
        "data": [runner_run_repr(run) for run in runs],
        "meta": {
            "gateway": {
                "id": gateway.public_id,
                "name": gateway.name,
                "leaseSeconds": gateway.lease_seconds,
            }
        },
    }


def run_event_data(run: Run) -> dict[str, Any]:
    """The run as announcements (webhook bodies) carry it."""
    data: dict[str, Any] = dict(run_core_repr(run))
    if run.error_summary:
        # Stored summaries are scrubbed already; scrubbing again costs little and keeps a
        # credential out of a third party's inbox should a write ever skip it.
        data["errorSummary"] = scrub(run.error_summary)
    if run.telemetry_summary:
        data["telemetrySummary"] = run.telemetry_summary
    return data
