from django.conf import settings
from django.db import models
from django.utils import timezone

from runs.ids import gateway_id


def default_lease_seconds() -> int:
    return settings.GATEWAY_DEFAULT_LEASE_SECONDS


class Gateway(models.Model):
    """A self-hosted agent in a customer's network that claims and runs pipeline runs."""

    public_id = models.CharField(max_length=40, unique=True, default=gateway_id, editable=False)
    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    lease_seconds = models.PositiveIntegerField(
        default=default_lease_seconds,
        help_text="A running run with no report for this long is failed as lost.",
    )
    poll_interval_seconds = models.PositiveIntegerField(
        default=10, help_text="How often the agent polls; offline after three missed polls."
    )
    last_seen_at = models.DateTimeField(null=True, blank=True)
    last_seen_ip = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


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
    gateway = models.ForeignKey(Gateway, on_delete=models.CASCADE, related_name="tokens")

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.gateway.name})"


class ApiKey(Credential):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys"
    )

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"
