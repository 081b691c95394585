from datetime import datetime, timedelta

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone

from common.ids import gateway_id


def default_lease_seconds() -> int:
    return settings.GATEWAY_DEFAULT_LEASE_SECONDS


class Gateway(models.Model):
    """A self-hosted agent in a customer's network that claims and runs pipeline runs."""

    public_id = models.CharField(max_length=40, unique=True, default=gateway_id, editable=False)
    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    lease_seconds = models.PositiveIntegerField(
        default=default_lease_seconds,
        validators=[MinValueValidator(60)],
        help_text="A running run with no report for this long is failed as lost.",
    )
    poll_interval_seconds = models.PositiveIntegerField(
        default=10,
        validators=[MinValueValidator(1)],
        help_text="How often the agent polls; offline after three missed polls.",
    )
    last_seen_at = models.DateTimeField(null=True, blank=True)
    last_seen_ip = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def offline_after(self) -> timedelta:
        """Silence after which the gateway counts as offline.

        Three missed polls, plus the last-seen write interval: ``last_seen_at`` is written at most
        once per that interval, so it may lag the true last request by that much.
        """
        return timedelta(
            seconds=3 * self.poll_interval_seconds
            + settings.GATEWAY_LAST_SEEN_WRITE_INTERVAL_SECONDS
        )

    def health(self, now: datetime | None = None) -> str:
        if self.last_seen_at is None:
            return GatewayHealth.NEVER
        now = now or timezone.now()
        if now - self.last_seen_at > self.offline_after:
            return GatewayHealth.OFFLINE
        return GatewayHealth.ONLINE

    def queued_runs_stranded(self, now: datetime | None = None) -> bool:
        """True when runs queued for this gateway cannot be expected to start soon: it never
        connected, or it has been offline longer than ``GATEWAY_OFFLINE_QUEUED_WARNING_SECONDS``."""
        if self.last_seen_at is None:
            return True
        now = now or timezone.now()
        limit = timedelta(seconds=settings.GATEWAY_OFFLINE_QUEUED_WARNING_SECONDS)
        return now - self.last_seen_at > self.offline_after + limit


class GatewayHealth(models.TextChoices):
    ONLINE = "online", "online"
    OFFLINE = "offline", "offline"
    NEVER = "never", "never connected"


class Credential(models.Model):
    """Shared fields of a bearer secret: only a SHA-256 hash and a short display prefix are kept."""

    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=16, editable=False)
    secret_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_used_ip = models.GenericIPAddressField(null=True, blank=True, editable=False)

    class Meta:
        abstract = True

    def is_live(self, now=None) -> bool:
        now = now or timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class GatewayToken(Credential):
    throttle_scope = "gateway"
    gateway = models.ForeignKey(Gateway, on_delete=models.CASCADE, related_name="tokens")

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.gateway.name})"


class ApiKey(Credential):
    throttle_scope = "api_key"
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys"
    )

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"
