"""Every write to a pipeline."""

from typing import Any

from django.db import IntegrityError, transaction
from rest_framework.exceptions import ValidationError

from gateways.models import Gateway
from pipelines.models import Pipeline

NAME_TAKEN = "A pipeline with this name already exists."
UPDATABLE_FIELDS = (
    "name",
    "description",
    "default_gateway",
    "run_retention_days",
    "log_retention_days",
)


def pipeline_create(
    *, name: str, description: str = "", default_gateway: Gateway | None = None
) -> Pipeline:
    if Pipeline.objects.filter(name=name).exists():
        raise ValidationError({"name": [NAME_TAKEN]})
    try:
        # The savepoint keeps an outer transaction usable when a concurrent create wins the
        # race for the name and the unique index refuses this one.
        with transaction.atomic():
            return Pipeline.objects.create(
                name=name, description=description, default_gateway=default_gateway
            )
    except IntegrityError:
        raise ValidationError({"name": [NAME_TAKEN]}) from None


def pipeline_update(*, pipeline: Pipeline, changes: dict[str, Any]) -> Pipeline:
    """Apply ``name``, ``description``, ``default_gateway`` and the retention overrides
    (``run_retention_days``, ``log_retention_days``) where present."""
    fields = [field for field in UPDATABLE_FIELDS if field in changes]
    if not fields:
        return pipeline
    if (
        "name" in changes
        and Pipeline.objects.filter(name=changes["name"]).exclude(pk=pipeline.pk).exists()
    ):
        raise ValidationError({"name": [NAME_TAKEN]})
    for field in fields:
        setattr(pipeline, field, changes[field])
    try:
        with transaction.atomic():
            pipeline.save(update_fields=[*fields, "updated_at"])
    except IntegrityError:
        raise ValidationError({"name": [NAME_TAKEN]}) from None
    return pipeline
