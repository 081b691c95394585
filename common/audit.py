"""The audit trail: one call per operator action, from admin, the web app and the API.

Call ``audit_record`` in the same transaction as the change it describes, so a rolled-back change
leaves no record. Never put a secret in ``details``: only prefixes and ids.
"""

from typing import Any

from django.db import models

from common.models import AuditEvent


class AuditAction:
    # Names of actions, not secrets.
    GATEWAY_TOKEN_ISSUED = "gateway_token.issued"  # noqa: S105
    GATEWAY_TOKEN_ROTATED = "gateway_token.rotated"  # noqa: S105
    GATEWAY_TOKEN_REVOKED = "gateway_token.revoked"  # noqa: S105
    API_KEY_ISSUED = "api_key.issued"
    API_KEY_REVOKED = "api_key.revoked"
    RUN_CANCELED = "run.cancel_requested"
    RUN_RERUN = "run.rerun"
    RUN_TRIGGERED = "run.triggered"
    WEBHOOK_ENDPOINT_CREATED = "webhook_endpoint.created"
    WEBHOOK_ENDPOINT_CHANGED = "webhook_endpoint.changed"
    WEBHOOK_ENDPOINT_DELETED = "webhook_endpoint.deleted"


def _actor_fields(actor: Any) -> tuple[Any, str]:
    """A user is linked; anything else (a gateway principal, None for the system) is named."""
    if actor is None:
        return None, "system"
    if isinstance(getattr(actor, "pk", None), int) and getattr(actor, "is_authenticated", False):
        return actor, actor.get_username()
    return None, str(actor)[:200]


def _target_fields(target: models.Model) -> tuple[str, str, str]:
    opts = target._meta
    target_id = getattr(target, "public_id", None) or str(target.pk)
    return f"{opts.app_label}.{opts.model_name}", str(target_id), str(target)[:200]


def audit_record(
    *,
    actor: Any,
    action: str,
    target: models.Model,
    details: dict[str, Any] | None = None,
    source: str = "",
    ip: str | None = None,
) -> AuditEvent:
    user, label = _actor_fields(actor)
    target_type, target_id, target_repr = _target_fields(target)
    return AuditEvent.objects.create(
        actor=user,
        actor_label=label,
        action=action,
        source=source,
        target_type=target_type,
        target_id=target_id,
        target_repr=target_repr,
        details=details or {},
        ip=ip,
    )


def _source_of(path: str) -> str:
    if path.startswith("/api/"):
        return "api"
    if path.startswith("/admin/"):
        return "admin"
    return "web"


def audit_request(
    request: Any, *, action: str, target: models.Model, details: dict[str, Any] | None = None
) -> AuditEvent:
    """``audit_record`` for an action taken through admin, the web app or the API."""
    return audit_record(
        actor=request.user,
        action=action,
        target=target,
        details=details,
        source=_source_of(request.path),
        ip=request.META.get("REMOTE_ADDR"),
    )
