"""Webhook endpoints, the outbox of events, and one delivery (with its attempts) per endpoint.

An event is written in the same transaction as the run's final status; the body it carries is
stored as the exact text that is signed and sent, so every retry resends identical bytes under the
same ``webhook-id`` (the event's public id).
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from common.ids import webhook_endpoint_id, webhook_event_id
from webhooks.fields import EncryptedSecretField
from webhooks.signing import new_signing_secret


class EventType(models.TextChoices):
    RUN_SUCCEEDED = "run.succeeded"
    RUN_FAILED = "run.failed"
    RUN_CANCELED = "run.canceled"


TEST_EVENT_TYPE = "webhook.test"


class WebhookEndpoint(models.Model):
    public_id = models.CharField(
        max_length=40, unique=True, default=webhook_endpoint_id, editable=False
    )
    url = models.URLField(max_length=2000, verbose_name="URL")
    description = models.TextField(blank=True)
    events = models.JSONField(
        default=list, help_text="Event types sent to this endpoint, e.g. ['run.failed']."
    )
    pipeline = models.ForeignKey(
        "pipelines.Pipeline",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="webhook_endpoints",
        help_text="Only runs of this pipeline; empty for every pipeline.",
    )
    enabled = models.BooleanField(default=True)
    disabled_at = models.DateTimeField(null=True, blank=True, editable=False)
    disabled_reason = models.CharField(max_length=200, blank=True, editable=False)
    # Set by the first failed attempt after a success; cleared by the next success.
    failing_since = models.DateTimeField(null=True, blank=True, editable=False)
    # The signing secret must stay usable to sign, so it cannot be a hash; it is never returned
    # after creation or rotation (reads show ``secret_prefix`` only).
    secret = EncryptedSecretField(default=new_signing_secret, editable=False)
    previous_secret = EncryptedSecretField(blank=True, editable=False)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "webhook endpoint"

    def __str__(self) -> str:
        return f"{self.public_id} → {self.url}"

    @property
    def secret_prefix(self) -> str:
        return f"{self.secret[:10]}…" if self.secret else ""

    def signing_secrets(self, now=None) -> list[str]:
        """The secrets that sign right now: the current one, and the previous during rotation."""
        now = now or timezone.now()
        secrets = [self.secret]
        if (
            self.previous_secret
            and self.previous_secret_expires_at
            and self.previous_secret_expires_at > now
        ):
            secrets.append(self.previous_secret)
        return secrets

    def wants(self, *, event_type: str, pipeline_id: int) -> bool:
        return event_type in self.events and self.pipeline_id in (None, pipeline_id)


class WebhookEvent(models.Model):
    """One outbox message. ``public_id`` is the ``webhook-id`` header of every delivery of it."""

    public_id = models.CharField(
        max_length=40, unique=True, default=webhook_event_id, editable=False
    )
    type = models.CharField(max_length=40)
    run = models.ForeignKey(
        "runs.Run",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="webhook_events",
        db_index=False,
    )
    body = models.TextField(help_text="The exact JSON text that is signed and sent.")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # One event per run and final status, however often the status is repeated or raced.
            models.UniqueConstraint(fields=["run", "type"], name="webhookevent_run_type"),
        ]

    def __str__(self) -> str:
        return f"{self.public_id} ({self.type})"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


class WebhookDelivery(models.Model):
    """Sending one event to one endpoint, retried on the schedule until it succeeds or gives up.

    ``locked_until`` is a lease taken by whoever sends an attempt; a worker that dies mid-send
    leaves it to expire, and the sweep sends again (same ``webhook-id``).
    """

    event = models.ForeignKey(WebhookEvent, on_delete=models.CASCADE, related_name="deliveries")
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    status = models.CharField(
        max_length=20, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    # Attempts in the current round (a redelivery starts a new round); drives the retry schedule.
    attempt_count = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    locked_until = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "webhook deliveries"
        constraints = [
            models.UniqueConstraint(fields=["event", "endpoint"], name="webhookdelivery_once"),
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                name="webhookdelivery_due_idx",
                condition=Q(status="pending"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event.public_id} → {self.endpoint.public_id}"


class WebhookAttempt(models.Model):
    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempts")
    attempted_at = models.DateTimeField()
    succeeded = models.BooleanField(default=False)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(default=0)
    response_body = models.TextField(blank=True, help_text="The first KiB of the response.")
    error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["delivery", "attempted_at", "id"]

    def __str__(self) -> str:
        return f"{self.delivery_id} @ {self.attempted_at:%Y-%m-%d %H:%M:%S}"
