"""OpenAPI pieces shared by every API view: the bearer schemes and the one error shape.

Importing this module registers the authentication extensions with drf-spectacular; every API
view module imports it for ``error_responses``, so the schema never misses them.
"""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse, extend_schema_field
from rest_framework import serializers

from runs.models import LogLevel, RunStatus

# One point of a run's telemetry series, as every run representation returns it.
TELEMETRY_SAMPLE_SCHEMA = {
    "type": "object",
    "properties": {"at": {"type": "string", "format": "date-time"}},
    "required": ["at"],
    "additionalProperties": {"type": "number"},
}


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "gateways.authentication.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A user's API key (`eltk_...`): `Authorization: Bearer <key>`.",
        }


class GatewayTokenScheme(OpenApiAuthenticationExtension):
    target_class = "gateways.authentication.GatewayTokenAuthentication"
    name = "gatewayToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A gateway's token (`gwt_...`): `Authorization: Bearer <token>`. "
            "Accepted only by `/api/agent/...`.",
        }


class ErrorSerializer(serializers.Serializer):
    """Every refusal: ``errors`` names the fields or parameters at fault, when some are."""

    detail = serializers.CharField()
    code = serializers.CharField()
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()), required=False
    )


ERROR_DESCRIPTIONS = {
    400: "Invalid parameters or body; `errors` names each one at fault.",
    401: "No credentials, or an unknown, expired or revoked bearer secret.",
    403: "The caller lacks the permission this action needs (or a session lacks its CSRF token).",
    404: "No such resource, or one the caller may not see.",
    409: "The resource's state does not allow this change.",
    413: "The request body is too large.",
    415: "The request body is not JSON.",
    429: "Rate limit exceeded; retry after `Retry-After` seconds.",
}


def error_responses(*codes: int) -> dict[int, OpenApiResponse]:
    return {
        code: OpenApiResponse(ErrorSerializer, description=ERROR_DESCRIPTIONS[code])
        for code in codes
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
    gateway = GatewayRefDocSerializer(allow_null=True)
    status = serializers.ChoiceField(RunStatus.choices)
    trigger = serializers.DictField(help_text="{type, ...details}")
    createdAt = serializers.DateTimeField()
    startedAt = serializers.DateTimeField(allow_null=True)
    finishedAt = serializers.DateTimeField(allow_null=True)
    durationSeconds = serializers.IntegerField(allow_null=True)
    errorSummary = serializers.CharField(allow_null=True)
    logEntries = LogEntryDocSerializer(many=True, required=False)
    telemetry = TelemetryDocField()
    nodes = NodeDocSerializer(many=True, required=False)


class AgentRunListDocSerializer(serializers.Serializer):
    data = RunnerRunDocSerializer(many=True)


def document_rate_limits(result, generator, request, public):
    """Every route is rate limited per credential (``DEFAULT_THROTTLE_CLASSES``), so every
    operation can answer 429 with ``Retry-After``; say so once here for all of them."""
    too_many = {
        "description": ERROR_DESCRIPTIONS[429],
        "headers": {
            "Retry-After": {
                "schema": {"type": "integer"},
                "description": "Seconds to wait before the next request.",
            }
        },
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            operation.setdefault("responses", {})["429"] = too_many
    return result
