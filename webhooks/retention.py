"""Retention of webhook deliveries: finished ones (and their attempts) after
``WEBHOOK_DELIVERY_RETENTION_DAYS``. Pending deliveries are never pruned; the event itself
stays with its run (one event per finished run, so a repeat can never fire twice)."""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction

from common.retention import batches_until
from webhooks.models import DeliveryStatus, WebhookDelivery


def webhook_deliveries_prune(*, now: datetime, dry_run: bool, deadline: float) -> dict[str, int]:
    cutoff = now - timedelta(days=settings.WEBHOOK_DELIVERY_RETENTION_DAYS)
    old = WebhookDelivery.objects.filter(created_at__lt=cutoff).exclude(
        status=DeliveryStatus.PENDING
    )
    if dry_run:
        return {"webhook deliveries": old.count()}
    deleted = 0
    for _ in batches_until(deadline):
        with transaction.atomic():
            # Primary-key order follows creation order and needs no other index.
            ids = list(old.order_by("pk").values_list("pk", flat=True)[:500])
            if not ids:
                break
            WebhookDelivery.objects.filter(pk__in=ids).delete()
            deleted += len(ids)
    return {"webhook deliveries": deleted}
