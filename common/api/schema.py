"""OpenAPI pieces shared by every API view: the bearer schemes and the one error shape.

Importing this module registers the authentication extensions with drf-spectacular; every API
view module imports it for ``error_responses``, so the schema never misses them.
"""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers


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
    errors = serializers.DictField(  # type: ignore[assignment]  # the field, not .errors
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
