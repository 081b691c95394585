"""Every write to a pipeline."""

from typing import Any

from django.db import IntegrityError, transaction

from common.actors import Actor
from common.audit import AuditAction, audit_record
from common.errors import InvalidInput
from common.labels import labels_checked
from common.roles import Perm
from gateways.models import Gateway
from pipelines.models import Pipeline

NAME_TAKEN = "A pipeline with this name already exists."
UPDATABLE_FIELDS = (
    "name",
    "description",
    "default_gateway",
    "run_retention_days",
    "log_retention_days",
    "labels",
)


def _name_taken() -> InvalidInput:
    return InvalidInput(errors={"name": [NAME_TAKEN]})


@transaction.atomic
def pipeline_create(
    *,
    actor: Actor,
    name: str,
    description: str = "",
    default_gateway: Gateway | None = None,
    labels: dict[str, Any] | None = None,
) -> Pipeline:
    actor.require(Perm.ADD_PIPELINES, doing="creating a pipeline")
    labels = labels_checked(labels if labels is not None else {})
    if Pipeline.objects.filter(name=name).exists():
        raise _name_taken()
    try:
        # The savepoint keeps the transaction usable when a concurrent create wins the race
        # for the name and the unique index refuses this one.
        with transaction.atomic():
            pipeline = Pipeline.objects.create(
                name=name, description=description, default_gateway=default_gateway, labels=labels
            )
    except IntegrityError:
        raise _name_taken() from None
    audit_record(actor=actor, action=AuditAction.PIPELINE_CREATED, target=pipeline)
    return pipeline


@transaction.atomic
def pipeline_update(*, actor: Actor, pipeline: Pipeline, changes: dict[str, Any]) -> Pipeline:
    """Apply ``name``, ``description``, ``default_gateway``, the retention overrides
    (``run_retention_days``, ``log_retention_days``) and the default ``labels`` (replaced
    whole) where present."""
    actor.require(Perm.CHANGE_PIPELINES, doing="changing a pipeline")
    if "labels" in changes:
        changes = {**changes, "labels": labels_checked(changes["labels"])}
    fields = [field for field in UPDATABLE_FIELDS if field in changes]
    if not fields:
        return pipeline
    if (
        "name" in changes
        and Pipeline.objects.filter(name=changes["name"]).exclude(pk=pipeline.pk).exists()
    ):
        raise _name_taken()
    for field in fields:
        setattr(pipeline, field, changes[field])
    try:
        with transaction.atomic():
            pipeline.save(update_fields=[*fields, "updated_at"])
    except IntegrityError:
        raise _name_taken() from None
    audit_record(
        actor=actor,
        action=AuditAction.PIPELINE_CHANGED,
        target=pipeline,
        details={"fields": sorted(fields)},
    )
    return pipeline
