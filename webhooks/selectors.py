"""Webhook reads: every query the API, admin and run detail page make of webhook data."""

from datetime import datetime

from django.db.models import Prefetch, Q, QuerySet

from common.ids import is_plausible_public_id
from runs.models import Run
from webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEndpoint


def webhook_endpoint_list() -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.select_related("pipeline").order_by("-created_at", "-id")


def webhook_endpoint_get(*, public_id: str) -> WebhookEndpoint | None:
    if not is_plausible_public_id(public_id):
        return None
    return webhook_endpoint_list().filter(public_id=public_id).first()


def webhook_deliveries_for_run(*, run: Run) -> QuerySet[WebhookDelivery]:
    """Deliveries of a run's events, oldest first, with endpoint, event and attempts loaded.

    Each item has ``event.type``, ``event.public_id`` (the ``webhook-id``), ``endpoint.url``,
    ``endpoint.public_id``, ``status`` (pending/succeeded/failed/canceled), ``attempt_count``,
    ``next_attempt_at``, ``last_status_code``, ``last_error`` and ``attempts.all()`` (oldest
    first: ``attempted_at``, ``succeeded``, ``status_code``, ``latency_ms``, ``response_body``,
    ``error``). Two queries whatever the number of deliveries and attempts.
    """
    return (
        WebhookDelivery.objects.filter(event__run=run)
        .select_related("event", "endpoint")
        .prefetch_related(
            Prefetch("attempts", queryset=WebhookAttempt.objects.order_by("attempted_at", "id"))
        )
        .order_by("created_at", "id")
    )


def webhook_deliveries_due(
    *, now: datetime, due_by: datetime | None = None
) -> QuerySet[WebhookDelivery]:
    """Pending deliveries whose next attempt is due (by ``due_by``, default ``now``) and that no
    sender holds a live lease on: what a sender may claim, and what the sweep re-enqueues."""
    return WebhookDelivery.objects.filter(
        Q(locked_until__isnull=True) | Q(locked_until__lte=now),
        status=DeliveryStatus.PENDING,
        next_attempt_at__lte=due_by or now,
    )
