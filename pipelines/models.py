from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from common.ids import pipeline_id


class Pipeline(models.Model):
    public_id = models.CharField(max_length=40, unique=True, default=pipeline_id, editable=False)
    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    default_gateway = models.ForeignKey(
        "gateways.Gateway",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="default_for_pipelines",
        help_text="Runs triggered without a gateway are targeted at this one.",
    )
    labels = models.JSONField(
        default=dict,
        blank=True,
        help_text='Default labels of its runs, e.g. {"team": "finance"}; a run\'s own labels '
        "override them key by key.",
    )
    # Retention overrides (README "Retention"); empty means the setting's default.
    run_retention_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(36500)],
        help_text="Keep this pipeline's finished runs this many days (empty: RUN_RETENTION_DAYS).",
    )
    log_retention_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(36500)],
        help_text="Keep the log lines and samples of its finished runs this many days; the run "
        "and its summary stay (empty: RUN_LOG_RETENTION_DAYS).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
