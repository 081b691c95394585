"""Keyset pagination over (created_at, id), newest first, with signed opaque cursors.

A page never uses OFFSET and never counts: it asks for ``limit + 1`` rows past the cursor's
position, so the first page and the millionth cost the same. The bound is written as
``created_at <= t AND (created_at < t OR (created_at = t AND id < i))`` so that PostgreSQL can
start the index scan at ``t`` instead of filtering the whole index.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from django.core import signing
from django.db.models import Model, Q, QuerySet
from rest_framework.exceptions import ValidationError

from common.time import to_utc

CURSOR_SALT = "runs.keyset-cursor"
Direction = Literal["older", "newer"]


@dataclass(frozen=True)
class Position:
    created_at: datetime
    pk: int
    direction: Direction = "older"


@dataclass
class Page:
    items: list[Any]
    older: Position | None
    newer: Position | None


def encode_cursor(position: Position) -> str:
    payload = [position.created_at.isoformat(), position.pk, position.direction[0]]
    return signing.dumps(payload, salt=CURSOR_SALT, compress=True)


def decode_cursor(cursor: str, *, field: str = "cursor") -> Position:
    try:
        stamp, pk, direction = signing.loads(cursor, salt=CURSOR_SALT)
        return Position(
            created_at=to_utc(datetime.fromisoformat(stamp)),
            pk=int(pk),
            direction="newer" if direction == "n" else "older",
        )
    except (signing.BadSignature, ValueError, TypeError, OverflowError):
        raise ValidationError({field: ["Invalid or tampered cursor."]}) from None


def keyset_page[M: Model](queryset: QuerySet[M], *, position: Position | None, limit: int) -> Page:
    if position is None or position.direction == "older":
        if position is not None:
            queryset = queryset.filter(
                Q(created_at__lt=position.created_at)
                | Q(created_at=position.created_at, pk__lt=position.pk),
                created_at__lte=position.created_at,
            )
        rows = list(queryset.order_by("-created_at", "-id")[: limit + 1])
        items = rows[:limit]
        has_older = len(rows) > limit
        has_newer = position is not None
    else:
        queryset = queryset.filter(
            Q(created_at__gt=position.created_at)
            | Q(created_at=position.created_at, pk__gt=position.pk),
            created_at__gte=position.created_at,
        )
        rows = list(queryset.order_by("created_at", "id")[: limit + 1])
        items = list(reversed(rows[:limit]))
        has_newer = len(rows) > limit
        has_older = True
    first: Any = items[0] if items else None
    last: Any = items[-1] if items else None
    older = Position(last.created_at, last.pk, "older") if items and has_older else None
    newer = Position(first.created_at, first.pk, "newer") if items and has_newer else None
    return Page(items=items, older=older, newer=newer)
