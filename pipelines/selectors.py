"""Reads of pipelines."""

from django.db.models import QuerySet

from common.ids import is_plausible_public_id
from pipelines.models import Pipeline


def pipeline_queryset() -> QuerySet[Pipeline]:
    return Pipeline.objects.select_related("default_gateway")


def pipeline_get(*, public_id: str) -> Pipeline | None:
    if not is_plausible_public_id(public_id):
        return None
    return pipeline_queryset().filter(public_id=public_id).first()


def pipeline_page(*, after_name: str | None, limit: int) -> tuple[list[Pipeline], str | None]:
    """Pipelines by name, keyset-paged on the unique name; returns the page and the last name
    when there are more."""
    queryset = pipeline_queryset().order_by("name")
    if after_name is not None:
        queryset = queryset.filter(name__gt=after_name)
    rows = list(queryset[: limit + 1])
    items = rows[:limit]
    return items, items[-1].name if len(rows) > limit else None
