"""Output serializers of the read API (``/api/runs``), and the shapes its schema documents.

The responses are rendered by these serializers, so the OpenAPI schema drf-spectacular derives
from them is the shape clients receive, not a description kept beside it.
"""

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from common.actors import Actor
from common.api.fields import LabelsField
from common.audit import audit_events_for
from gateways.api.serializers import GatewayRefSerializer
from runs import selectors, stats
from runs.api.schema import TELEMETRY_SAMPLE_SCHEMA, component_ref
from runs.models import LogLevel, Run, RunStatus, TriggerType
from runs.representations import Eta, eta_repr, sample_repr, trigger_repr

TRIGGER_OBJECT_SCHEMA = {
    "type": "object",
    "description": "The trigger type and the details its caller sent (e.g. scheduleId).",
    "properties": {"type": {"type": "string", "enum": list(TriggerType.values)}},
    "required": ["type"],
    "additionalProperties": True,
}
SCALAR_MAP_SCHEMA = {
    "type": "object",
    "additionalProperties": {
        "nullable": True,
        "oneOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}],
    },
}


# The shape is the representations' (``Eta``), published as a component by ``runs.api.schema``.
NULLABLE_ETA_SCHEMA = {"allOf": [component_ref(Eta)], "nullable": True}


class BaselineSerializer(serializers.Serializer):
    """The pipeline's newest succeeded runs other than this one, and this run against them."""

    durationP50Seconds = serializers.FloatField(allow_null=True)
    durationP90Seconds = serializers.FloatField(allow_null=True)
    rowsLoadedMedian = serializers.FloatField(allow_null=True)
    bytesLoadedMedian = serializers.FloatField(allow_null=True)
    durationRatio = serializers.FloatField(
        allow_null=True, help_text="This run's duration over the p50."
    )
    rowsRatio = serializers.FloatField(allow_null=True, help_text="Rows over the median.")
    bytesRatio = serializers.FloatField(allow_null=True, help_text="Bytes over the median.")
    sampleSize = serializers.IntegerField()
    nodeDurationMediansSeconds = serializers.DictField(child=serializers.FloatField())
    badges = serializers.ListField(child=serializers.CharField())


def baseline_out(judgement) -> dict[str, Any] | None:
    baseline = judgement.baseline if judgement else None
    if baseline is None:
        return None
    return {
        "durationP50Seconds": baseline.duration_p50,
        "durationP90Seconds": baseline.duration_p90,
        "rowsLoadedMedian": baseline.rows_median,
        "bytesLoadedMedian": baseline.bytes_median,
        "durationRatio": judgement.duration_ratio,
        "rowsRatio": judgement.rows_ratio,
        "bytesRatio": judgement.bytes_ratio,
        "sampleSize": baseline.sample_size,
        "nodeDurationMediansSeconds": baseline.node_duration_medians,
        "badges": [badge.text for badge in judgement.badges],
    }


class PageMetaSerializer(serializers.Serializer):
    cursor = serializers.CharField(
        allow_null=True,
        help_text="Pass as `cursor` for the next (older) page; null on the last page.",
    )


class RunMetricsSerializer(serializers.Serializer):
    rowsRead = serializers.IntegerField(allow_null=True)
    rowsWritten = serializers.IntegerField(allow_null=True)
    bytesShuffled = serializers.IntegerField(allow_null=True)
    costUnits = serializers.FloatField(required=False, help_text="Present when reported.")


class RunErrorSerializer(serializers.Serializer):
    message = serializers.CharField()
    stackRef = serializers.CharField(required=False, help_text="Present when reported.")


@extend_schema_field(
    {
        "type": "object",
        "properties": {
            "summary": SCALAR_MAP_SCHEMA,
            "samples": {"type": "array", "items": TELEMETRY_SAMPLE_SCHEMA},
        },
        "required": ["summary", "samples"],
    }
)
class TelemetryField(serializers.Field):
    def to_representation(self, value):
        return value


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def run_metrics(run: Run) -> dict[str, Any]:
    """Seed vocabulary from the runner's summary: a runner that reports only ``rowsLoaded`` and
    ``bytesLoaded`` read and wrote that many rows and moved that many bytes."""
    summary = run.telemetry_summary or {}
    rows_loaded = _int_or_none(summary.get("rowsLoaded"))
    metrics: dict[str, Any] = {
        "rowsRead": _int_or_none(summary.get("rowsRead", rows_loaded)),
        "rowsWritten": _int_or_none(summary.get("rowsWritten", rows_loaded)),
        "bytesShuffled": _int_or_none(
            summary.get("bytesShuffled", _int_or_none(summary.get("bytesLoaded")))
        ),
    }
    cost = summary.get("costUnits")
    if isinstance(cost, int | float) and not isinstance(cost, bool):
        metrics["costUnits"] = cost
    return metrics


def run_error(run: Run) -> dict[str, str] | None:
    if run.status != RunStatus.FAILED:
        return None
    error = {"message": run.error_summary or "Run failed."}
    stack_ref = (run.telemetry_summary or {}).get("stackRef")
    if isinstance(stack_ref, str) and stack_ref:
        error["stackRef"] = stack_ref
    return error


class RunEventSerializer(serializers.Serializer):
    """One audited action on a run: who did what, how (``source``) and when."""

    at = serializers.DateTimeField(source="created_at")
    action = serializers.CharField()
    actor = serializers.CharField(source="actor_label")
    source = serializers.CharField()
    details = serializers.DictField(help_text="Ids and statuses only; never a secret.")
    ip = serializers.IPAddressField(
        required=False, allow_null=True, help_text="The client's address; shown to admins only."
    )

    def to_representation(self, event):
        data = super().to_representation(event)
        if not self.context.get("show_ips"):
            data.pop("ip", None)
        return data


class RunDetailSerializer(serializers.Serializer):
    """The full record of the Runs API reference, plus gateway, telemetry and createdAt."""

    id = serializers.CharField(source="public_id")
    pipelineId = serializers.CharField(source="pipeline.public_id")
    pipelineName = serializers.CharField(source="pipeline.name")
    gateway = GatewayRefSerializer(allow_null=True)
    status = serializers.ChoiceField(choices=RunStatus.choices)
    trigger = serializers.SerializerMethodField()
    createdAt = serializers.DateTimeField(source="created_at")
    startedAt = serializers.DateTimeField(source="started_at", allow_null=True)
    finishedAt = serializers.DateTimeField(source="finished_at", allow_null=True)
    durationSeconds = serializers.IntegerField(source="duration_seconds", allow_null=True)
    labels = LabelsField()
    metrics = serializers.SerializerMethodField()
    error = serializers.SerializerMethodField()
    errorSummary = serializers.SerializerMethodField()
    telemetry = serializers.SerializerMethodField()
    events = serializers.SerializerMethodField()

    @extend_schema_field(RunEventSerializer(many=True))
    def get_events(self, run: Run) -> list[dict[str, Any]]:
        """Every audited action on the run, from its creation on, oldest first."""
        return RunEventSerializer(
            self.context.get("events", []), many=True, context=self.context
        ).data

    baseline = serializers.SerializerMethodField()
    eta = serializers.SerializerMethodField()
    badges = serializers.SerializerMethodField()

    @extend_schema_field(BaselineSerializer(allow_null=True))
    def get_baseline(self, run: Run) -> dict[str, Any] | None:
        return baseline_out(self.context.get("judgement"))

    @extend_schema_field(NULLABLE_ETA_SCHEMA)
    def get_eta(self, run: Run) -> dict[str, Any] | None:
        judgement = self.context.get("judgement")
        return eta_repr(judgement.eta if judgement else None)

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_badges(self, run: Run) -> list[str]:
        judgement = self.context.get("judgement")
        return [badge.text for badge in judgement.badges] if judgement else []

    @extend_schema_field(TRIGGER_OBJECT_SCHEMA)
    def get_trigger(self, run: Run) -> dict[str, Any]:
        return trigger_repr(run)

    @extend_schema_field(RunMetricsSerializer)
    def get_metrics(self, run: Run) -> dict[str, Any]:
        return run_metrics(run)

    @extend_schema_field(RunErrorSerializer(allow_null=True))
    def get_error(self, run: Run) -> dict[str, str] | None:
        return run_error(run)

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_errorSummary(self, run: Run) -> str | None:
        return run.error_summary or None

    @extend_schema_field(TelemetryField)
    def get_telemetry(self, run: Run) -> dict[str, Any]:
        samples = self.context.get("samples", [])
        return {
            "summary": run.telemetry_summary or {},
            "samples": [sample_repr(sample) for sample in samples],
        }


class RunNodeOutSerializer(serializers.Serializer):
    nodeId = serializers.CharField(source="node_id")
    type = serializers.CharField()
    status = serializers.CharField()
    startedAt = serializers.DateTimeField(source="started_at", allow_null=True)
    finishedAt = serializers.DateTimeField(source="finished_at", allow_null=True)
    retries = serializers.IntegerField()
    metrics = serializers.SerializerMethodField()

    @extend_schema_field(SCALAR_MAP_SCHEMA)
    def get_metrics(self, node) -> dict[str, Any]:
        return node.metrics or {}


class RunNodesSerializer(serializers.Serializer):
    runId = serializers.CharField()
    nodes = RunNodeOutSerializer(many=True)


class LogLineOutSerializer(serializers.Serializer):
    ts = serializers.DateTimeField(source="at")
    level = serializers.ChoiceField(choices=LogLevel.choices)
    nodeId = serializers.SerializerMethodField()
    message = serializers.CharField()

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_nodeId(self, line) -> str | None:
        return line.node_id or None


class RunLogsSerializer(serializers.Serializer):
    runId = serializers.CharField()
    lines = LogLineOutSerializer(many=True)
    nextCursor = serializers.CharField(
        help_text="Pass as `since` to receive only lines newer than these."
    )
    logRemovedAfterDays = serializers.IntegerField(
        allow_null=True,
        help_text="Set when retention removed this run's log lines and samples: the retention "
        "in days that applied (the run and its summary are kept). Null otherwise.",
    )


class RunCancelSerializer(serializers.Serializer):
    id = serializers.CharField()
    status = serializers.ChoiceField(choices=RunStatus.choices)
    message = serializers.CharField()


def run_detail_body(run: Run, *, actor: Actor) -> dict[str, Any]:
    """``GET /api/runs/{id}``: the run with its samples and its audited actions."""
    context = {
        "samples": selectors.run_samples(run=run),
        "events": audit_events_for(target=run),
        "show_ips": bool(getattr(actor.user, "is_staff", False)),
        "judgement": stats.judge_run(run),
    }
    return RunDetailSerializer(run, context=context).data
