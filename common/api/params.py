"""Query parameters every list takes (``limit``, ``cursor``), the checks every API view makes of
its query string, and the action-permission gate of the viewsets."""

from typing import Any, cast

from drf_spectacular.utils import OpenApiParameter
from rest_framework.exceptions import ValidationError
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.permissions import BasePermission
from rest_framework.settings import api_settings

from common.actors import actor_from_request


class _WithoutFormatOverride:
    URL_FORMAT_OVERRIDE = None

    def __getattr__(self, name):
        return getattr(api_settings, name)


class FormatIsAParameter(DefaultContentNegotiation):
    """For views whose own ``format`` parameter picks a download's file format (``csv``,
    ``ndjson``): DRF would otherwise read ``?format=`` as a renderer name and answer 404."""

    settings = cast(Any, _WithoutFormatOverride())


DEFAULT_LIMIT = 50
MAX_LIMIT = 200


class HasActionPermission(BasePermission):
    """The Django permission a view names for the action, e.g. ``runs.view_run``; a refusal
    is a 403 naming the role that holds it. Writes are checked again by their services."""

    def has_permission(self, request, view) -> bool:
        # A viewset's action, or a plain view's method ("get").
        action = getattr(view, "action", None) or request.method.lower()
        perm = getattr(view, "action_permissions", {}).get(action)
        if perm is not None:
            actor_from_request(request).require(perm, doing="this request")
        return True


def refuse_nul_characters(params) -> None:
    """A NUL character cannot reach PostgreSQL; name the parameter instead of failing later."""
    bad = {
        name: ["NUL characters are not allowed."]
        for name, values in params.lists()
        if "\x00" in name or any("\x00" in value for value in values)
    }
    if bad:
        raise ValidationError(bad)


def parse_limit(params, errors: dict[str, list[str]]) -> int:
    raw = params.get("limit")
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        errors["limit"] = [f"Must be an integer from 1 to {MAX_LIMIT}."]
        return DEFAULT_LIMIT
    return int(raw)


LIMIT_PARAMETER = OpenApiParameter(
    "limit",
    {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
    description=f"Page size, 1 to {MAX_LIMIT}.",
)
CURSOR_PARAMETER = OpenApiParameter(
    "cursor", str, description="Opaque: `meta.cursor` of the previous page."
)
