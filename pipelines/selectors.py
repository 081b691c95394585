"""Reads of pipelines."""

from django.db.models import F, QuerySet

from common.api.pagination import Ordering, Page, Position, keyset_page
from common.ids import is_plausible_public_id
from pipelines.models import Pipeline


def pipeline_queryset() -> QuerySet[Pipeline]:
    return Pipeline.objects.select_related("default_gateway")


def pipeline_get(*, public_id: str) -> Pipeline | None:
    if not is_plausible_public_id(public_id):
        return None
    return pipeline_queryset().filter(public_id=public_id).first()


# Pipelines by their unique name (ties by id, which a unique name never needs).
PIPELINES_BY_NAME = Ordering("name", F("name"), descending=False, kind="str")


def pipeline_page(*, position: Position | None, limit: int) -> Page:
    """Pipelines by name, a keyset page after ``position``."""
    return keyset_page(
        pipeline_queryset(), position=position, limit=limit, ordering=PIPELINES_BY_NAME
    )
