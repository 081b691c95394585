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
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
