from django.conf import settings
from django.db import models
from django.utils import timezone


class AuditEvent(models.Model):
    """Who did what to which object, how and when. Written by ``common.audit.audit_record``,
    which the services that make the changes call in their own transaction."""

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Kept as text as well, so the record survives the user's deletion and can name non-users
    # ("gateway:edge-1", "system").
    actor_label = models.CharField(max_length=200)
    action = models.CharField(max_length=60, db_index=True)
    source = models.CharField(
        max_length=20, blank=True, help_text="web, api, admin, runner or system."
    )
    target_type = models.CharField(max_length=100)
    target_id = models.CharField(max_length=100)
    target_repr = models.CharField(max_length=200)
    details = models.JSONField(default=dict, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["target_type", "target_id"], name="audit_target_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.actor_label} {self.action} {self.target_repr}"


class UserPreference(models.Model):
    """What a person chose for the pages; one row per user, created on first save."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="preference"
    )
    time_zone = models.CharField(
        max_length=64,
        blank=True,
        help_text="An IANA time zone (UTC, Europe/Berlin...) to show times in; blank for the "
        "browser's own zone.",
    )
    last_view = models.CharField(
        max_length=40,
        blank=True,
        help_text="The saved or built-in view of the Runs page opened last (its id); blank for "
        "none.",
    )
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.user_id}: {self.time_zone or 'browser zone'}"
