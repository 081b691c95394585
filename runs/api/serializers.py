"""Input serializers per caller role, and the run as the runner routes return it."""

import copy
import re
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from common.api.fields import (
    LabelsField,
    ScalarMapField,
    StrictCharField,
    StrictChoiceField,
    StrictDateTimeField,
    StrictIntegerField,
    StrictNumberField,
    StrictSerializer,
)
from runs.models import STATUS_ALIASES, LogLevel, RunStatus, TriggerType

NODE_STATUSES = [
    "pending",
    "queued",
    "running",
    "retrying",
    "succeeded",
    "failed",
    "canceled",
    "skipped",
]
MAX_LIST_ITEMS = 5000
MAX_APPEND_LOGS = 500
MAX_APPEND_SAMPLES = 2000


class TelemetrySummarySerializer(serializers.Serializer):
    """Known keys are typed; any other scalar key a runner chooses is kept as sent."""

    rowsLoaded = StrictIntegerField(required=False, allow_null=True)
    bytesLoaded = StrictIntegerField(required=False, allow_null=True)
    progress = StrictNumberField(required=False, allow_null=True, min_value=0, max_value=100)
    currentPhase = StrictCharField(
        required=False, allow_null=True, allow_blank=True, max_length=200
    )
    currentResource = StrictCharField(
        required=False, allow_null=True, allow_blank=True, max_length=500
    )

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError(["Must be a JSON object."])
        known = {key: data[key] for key in data if key in self.fields}
        extra = {key: data[key] for key in data if key not in self.fields}
        validated = super().to_internal_value(known)
        validated.update(ScalarMapField(max_keys=64).run_validation(extra))
        return validated


class TelemetrySampleSerializer(serializers.Serializer):
    """``{at?, <name>: number, ...}``: a point of the run's time series."""

    at = StrictDateTimeField(required=False)
    rowsLoaded = StrictIntegerField(required=False)
    bytesLoaded = StrictIntegerField(required=False)
    progress = StrictNumberField(required=False, min_value=0, max_value=100)

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError(["Must be a JSON object."])
        known = {key: data[key] for key in data if key in self.fields}
        extra = {key: data[key] for key in data if key not in self.fields}
        validated = super().to_internal_value(known)
        validated.update(ScalarMapField(max_keys=32, numeric_only=True).run_validation(extra))
        return validated


class LogEntrySerializer(StrictSerializer):
    at = StrictDateTimeField(required=False)
    level = StrictChoiceField(LogLevel.choices)
    message = StrictCharField(allow_blank=True, trim_whitespace=False)
    nodeId = StrictCharField(required=False, allow_blank=True, allow_null=True, max_length=200)


SURROGATES = re.compile("[\ud800-\udfff]")
# ``LogLevel.values`` builds a new list on every read; a batch checks each line's level.
LEVELS = frozenset(LogLevel.values)


def _plain_text(value: Any) -> bool:
    return type(value) is str and "\x00" not in value and not SURROGATES.search(value)


class AppendLogListSerializer(serializers.ListSerializer):
    """``appendLogs``: a batch of the plainest lines (level, message, optional nodeId, no
    ``at``) is checked here in one pass, for what the per-entry serializer would accept and
    return unchanged; any other batch is validated entry by entry, which also names the
    entry at fault. A runner's 500-line batch then costs a fraction of 500 serializers."""

    def to_internal_value(self, data):
        plain = type(data) is list and 1 <= len(data) <= (self.max_length or len(data))
        if plain and all(self._plain_line(entry) for entry in data):
            return [dict(entry) for entry in data]
        return super().to_internal_value(data)

    @staticmethod
    def _plain_line(entry: Any) -> bool:
        if type(entry) is not dict or not entry.keys() <= {"level", "message", "nodeId"}:
            return False
        level = entry.get("level")
        if type(level) is not str or level not in LEVELS or not _plain_text(entry.get("message")):
            return False
        node_id = entry.get("nodeId")
        if node_id is None:
            return True
        return _plain_text(node_id) and len(node_id) <= 200 and node_id == node_id.strip()


class AppendLogSerializer(LogEntrySerializer):
    """One line; the server stamps it with the request time (an ``at`` sent is checked, then
    ignored, so that lines stay in arrival order)."""

    class Meta:
        list_serializer_class = AppendLogListSerializer

    def run_validation(self, data=serializers.empty):
        # The plainest line (what ``AppendLogListSerializer`` takes in one pass) is what the
        # fields would return unchanged: checked without building them (DRF deep-copies four
        # fields per serializer, which cost more than the rest of a one-line append's checks).
        if AppendLogListSerializer._plain_line(data):
            return dict(data)
        return super().run_validation(data)

    def to_internal_value(self, data):
        validated = super().to_internal_value(data)
        validated.pop("at", None)
        return validated


class NodeSerializer(StrictSerializer):
    nodeId = StrictCharField(max_length=200)
    type = StrictCharField(required=False, allow_blank=True, max_length=200)
    status = StrictChoiceField(NODE_STATUSES, aliases=STATUS_ALIASES)
    startedAt = StrictDateTimeField(required=False, allow_null=True)
    finishedAt = StrictDateTimeField(required=False, allow_null=True)
    retries = StrictIntegerField(required=False, max_value=2**31 - 1)
    metrics = ScalarMapField(required=False, max_keys=64)


class RunPatchSerializer(StrictSerializer):
    """Every field of a runner PATCH; all optional, applied together or not at all."""

    status = StrictChoiceField(RunStatus.choices, aliases=STATUS_ALIASES, required=False)
    appendLog = AppendLogSerializer(required=False)
    appendLogs = AppendLogSerializer(
        many=True,
        required=False,
        allow_empty=False,
        max_length=MAX_APPEND_LOGS,
        help_text=f"Append 1 to {MAX_APPEND_LOGS} lines in order, each stamped with the "
        "request time (after `appendLog` when both are sent).",
    )
    logEntries = LogEntrySerializer(many=True, required=False, max_length=MAX_LIST_ITEMS)
    telemetrySummary = TelemetrySummarySerializer(required=False)
    appendTelemetrySample = TelemetrySampleSerializer(required=False)
    appendTelemetrySamples = TelemetrySampleSerializer(
        many=True,
        required=False,
        allow_empty=False,
        max_length=MAX_APPEND_SAMPLES,
        help_text=f"Append 1 to {MAX_APPEND_SAMPLES} points in order (`at` defaults to the "
        "request time; after `appendTelemetrySample` when both are sent).",
    )
    telemetrySamples = TelemetrySampleSerializer(
        many=True, required=False, max_length=MAX_LIST_ITEMS
    )
    errorSummary = StrictCharField(
        required=False, allow_null=True, allow_blank=True, trim_whitespace=False
    )
    startedAt = StrictDateTimeField(required=False, allow_null=True)
    finishedAt = StrictDateTimeField(required=False, allow_null=True)
    nodes = NodeSerializer(many=True, required=False, max_length=1000)
    labels = LabelsField(
        required=False,
        help_text="Merged into the run's labels; a key sent as null is removed.",
    )

    def get_fields(self):
        """Only the fields the body holds: every field is optional without a default, so the
        others would validate nothing, and building all ten (DRF deep-copies each nested
        serializer per request) would cost more than validating a runner's one-line append.
        Without a body (the schema, the browsable forms) every field is there."""
        data = getattr(self, "initial_data", None)
        if not isinstance(data, dict):
            return super().get_fields()
        return {
            name: copy.deepcopy(field)
            for name, field in self._declared_fields.items()
            if name in data
        }

    def validate_nodes(self, nodes):
        seen = set()
        for node in nodes:
            if node["nodeId"] in seen:
                raise serializers.ValidationError(f"nodeId {node['nodeId']!r} appears twice.")
            seen.add(node["nodeId"])
        return nodes

    def to_changes(self) -> dict[str, Any]:
        """The validated body in the service's snake_case vocabulary."""
        data = self.validated_data
        names = {
            "status": "status",
            "appendLog": "append_log",
            "appendLogs": "append_logs",
            "logEntries": "log_entries",
            "telemetrySummary": "telemetry_summary",
            "appendTelemetrySample": "append_telemetry_sample",
            "appendTelemetrySamples": "append_telemetry_samples",
            "telemetrySamples": "telemetry_samples",
            "errorSummary": "error_summary",
            "startedAt": "started_at",
            "finishedAt": "finished_at",
            "nodes": "nodes",
            "labels": "labels",
        }
        return {names[key]: value for key, value in data.items()}


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "enum": list(TriggerType.values)},
            {
                "type": "object",
                "properties": {"type": {"type": "string", "enum": list(TriggerType.values)}},
                "required": ["type"],
                "additionalProperties": {
                    "nullable": True,
                    "oneOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}],
                },
            },
        ]
    }
)
class TriggerField(serializers.Field):
    """``"schedule"`` or ``{"type": "schedule", ...scalar details}``."""

    default_error_messages = {
        "invalid": "Must be a trigger type string or an object with a 'type'.",
    }

    def to_internal_value(self, data):
        if isinstance(data, str):
            data = {"type": data}
        if not isinstance(data, dict) or "type" not in data:
            self.fail("invalid")
        details = dict(data)
        trigger_type = StrictChoiceField(TriggerType.choices).run_validation(details.pop("type"))
        details = ScalarMapField(max_keys=16).run_validation(details)
        return {"type": trigger_type, "details": details}

    def to_representation(self, value):
        return value


class RunCreateSerializer(StrictSerializer):
    pipelineId = StrictCharField(max_length=40)
    gateway = StrictCharField(required=False, allow_null=True, max_length=100)
    trigger = TriggerField(required=False)
    labels = LabelsField(
        required=False, help_text="Over the pipeline's default labels, key by key."
    )


class PipelineRunSerializer(StrictSerializer):
    gateway = StrictCharField(
        required=False,
        allow_null=True,
        max_length=100,
        help_text="Target this gateway (id or name) instead of the pipeline's default.",
    )
    trigger = TriggerField(
        required=False,
        help_text="A trigger type, or {type, ...scalar details}; default `api` (every run made "
        "through the API).",
    )
    labels = LabelsField(
        required=False, help_text="Over the pipeline's default labels, key by key."
    )
