"""Retention of webhook deliveries: finished ones (and their attempts) after
``WEBHOOK_DELIVERY_RETENTION_DAYS``. Pending deliveries are never pruned; the event itself
stays with its run (one event per finished run, so a repeat can never fire twice)."""

from datetime import datetime, timedelta

from django.conf import settings

from common.retention import prune_in_batches
from webhooks.models import DeliveryStatus, WebhookDelivery


def webhook_deliveries_prune(*, now: datetime, dry_run: bool, deadline: float) -> dict[str, int]:
    cutoff = now - timedelta(days=settings.WEBHOOK_DELIVERY_RETENTION_DAYS)
    return prune_in_batches(
        WebhookDelivery.objects.filter(created_at__lt=cutoff).exclude(
            status=DeliveryStatus.PENDING
        ),
        name="webhook deliveries",
        # Primary-key order follows creation order and needs no other index.
        order_by=("pk",),
        batch=500,
        dry_run=dry_run,
        deadline=deadline,
    )
