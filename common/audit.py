"""The audit trail: who did what to which object, how and when.

Write services call ``audit_record`` inside their own transaction, so a rolled-back change leaves
no record and no caller can forget one. Never put a secret in ``details``: only prefixes and ids.
"""

from typing import Any

from django.db import models

from common.actors import Actor
from common.models import AuditEvent


class AuditAction:
    # Names of actions, not secrets.
    GATEWAY_CREATED = "gateway.created"
    GATEWAY_TOKEN_ISSUED = "gateway_token.issued"  # noqa: S105
    GATEWAY_TOKEN_ROTATED = "gateway_token.rotated"  # noqa: S105
    GATEWAY_TOKEN_REVOKED = "gateway_token.revoked"  # noqa: S105
    API_KEY_ISSUED = "api_key.issued"
    API_KEY_REVOKED = "api_key.revoked"
    PIPELINE_CREATED = "pipeline.created"
    PIPELINE_CHANGED = "pipeline.changed"
    RUN_CREATED = "run.created"
    RUN_RERUN = "run.rerun"
    RUN_CANCEL_REQUESTED = "run.cancel_requested"
    RUN_STATUS_CHANGED = "run.status_changed"
    RUN_FINISHED_BY_SYSTEM = "run.finished_by_system"
    BULK_JOB_STARTED = "bulk_job.started"
    SAVED_VIEW_CREATED = "saved_view.created"
    SAVED_VIEW_CHANGED = "saved_view.changed"
    SAVED_VIEW_DELETED = "saved_view.deleted"
    WEBHOOK_ENDPOINT_CREATED = "webhook_endpoint.created"
    WEBHOOK_ENDPOINT_CHANGED = "webhook_endpoint.changed"
    WEBHOOK_ENDPOINT_DELETED = "webhook_endpoint.deleted"
    WEBHOOK_ENDPOINT_SECRET_ROTATED = "webhook_endpoint.secret_rotated"  # noqa: S105
    WEBHOOK_ENDPOINT_TESTED = "webhook_endpoint.tested"
    WEBHOOK_REDELIVERED = "webhook.redelivered"
    USER_ROLE_SET = "user.role_set"
    USER_PREFERENCE_SET = "user.preference_set"


def target_key(target: models.Model) -> tuple[str, str]:
    """How records name their target: ``("runs.run", "run_01j...")``."""
    opts = target._meta
    target_id = getattr(target, "public_id", None) or str(target.pk)
    return f"{opts.app_label}.{opts.model_name}", str(target_id)


def audit_record(
    *,
    actor: Actor,
    action: str,
    target: models.Model,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    target_type, target_id = target_key(target)
    return AuditEvent.objects.create(
        actor=actor.stored_user,
        actor_label=actor.label[:200],
        action=action,
        source=actor.source.value,
        target_type=target_type,
        target_id=target_id,
        target_repr=str(target)[:200],
        details=details or {},
        ip=actor.ip,
    )


def audit_events_for(*, target: models.Model) -> models.QuerySet[AuditEvent]:
    """Every record about ``target``, oldest first (one indexed query)."""
    target_type, target_id = target_key(target)
    return AuditEvent.objects.filter(target_type=target_type, target_id=target_id).order_by(
        "created_at", "id"
    )
