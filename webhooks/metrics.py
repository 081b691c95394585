"""Webhook metrics read at scrape time (``settings.METRICS_COLLECTORS``), through the partial
index of pending deliveries (``webhookdelivery_due_idx``)."""

from collections.abc import Iterable

from django.db.models import Count, Min
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily

from webhooks.models import DeliveryStatus, WebhookDelivery


def collect() -> Iterable[GaugeMetricFamily]:
    now = timezone.now()
    due = WebhookDelivery.objects.filter(
        status=DeliveryStatus.PENDING, next_attempt_at__lte=now
    ).aggregate(n=Count("id"), oldest=Min("next_attempt_at"))
    yield GaugeMetricFamily("elt_webhook_backlog", "Deliveries due to be sent now.", value=due["n"])
    age = (now - due["oldest"]).total_seconds() if due["oldest"] else 0.0
    yield GaugeMetricFamily(
        "elt_webhook_oldest_due_age_seconds",
        "How long the oldest due delivery has been waiting (0 when none is).",
        value=max(0.0, age),
    )
