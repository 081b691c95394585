"""OpenAPI shapes of the runner routes."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from common.api.fields import LabelsField
from runs.models import LogLevel, RunStatus

# One point of a run's telemetry series, as every run representation returns it.
TELEMETRY_SAMPLE_SCHEMA = {
    "type": "object",
    "properties": {"at": {"type": "string", "format": "date-time"}},
    "required": ["at"],
    "additionalProperties": {"type": "number"},
}


# The shapes ``runner_run_repr`` returns, described for the schema of the runner routes.


class GatewayRefDocSerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()


class LogEntryDocSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    level = serializers.ChoiceField(LogLevel.choices)
    message = serializers.CharField()
    nodeId = serializers.CharField(required=False)


@extend_schema_field(
    {
        "type": "object",
        "properties": {
            "summary": {"type": "object", "additionalProperties": True},
            "samples": {"type": "array", "items": TELEMETRY_SAMPLE_SCHEMA},
        },
        "required": ["summary"],
    }
)
class TelemetryDocField(serializers.JSONField):
    pass


class NodeDocSerializer(serializers.Serializer):
    nodeId = serializers.CharField()
    type = serializers.CharField()
    status = serializers.CharField()
    startedAt = serializers.DateTimeField(allow_null=True)
    finishedAt = serializers.DateTimeField(allow_null=True)
    retries = serializers.IntegerField()
    metrics = serializers.DictField()


class RunnerRunDocSerializer(serializers.Serializer):
    id = serializers.CharField()
    pipelineId = serializers.CharField()
    pipelineName = serializers.CharField()
    gateway = GatewayRefDocSerializer(allow_null=True)
    status = serializers.ChoiceField(RunStatus.choices)
    trigger = serializers.DictField(help_text="{type, ...details}")
    createdAt = serializers.DateTimeField()
    startedAt = serializers.DateTimeField(allow_null=True)
    finishedAt = serializers.DateTimeField(allow_null=True)
    durationSeconds = serializers.IntegerField(allow_null=True)
    errorSummary = serializers.CharField(allow_null=True)
    labels = LabelsField()
    logEntries = LogEntryDocSerializer(many=True, required=False)
    telemetry = TelemetryDocField()
    nodes = NodeDocSerializer(many=True, required=False)


class AgentGatewayDocSerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    leaseSeconds = serializers.IntegerField(
        help_text="A running run with no report for this long is failed as lost."
    )


class AgentMetaDocSerializer(serializers.Serializer):
    gateway = AgentGatewayDocSerializer()


class AgentRunListDocSerializer(serializers.Serializer):
    data = RunnerRunDocSerializer(many=True)
    meta = AgentMetaDocSerializer()
