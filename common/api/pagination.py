"""The one keyset paginator: pages of rows in any order over a sort key and the id, with signed
opaque cursors. The read API, the Runs page, its export and the pipelines list use it.

A page never uses OFFSET and never counts: it asks for ``limit + 1`` rows past the cursor's
position, so the first page and the millionth cost the same. The bound is written as
``v <= t AND (v < t OR (v = t AND id < i))`` (for a descending key) so that PostgreSQL can start
the index scan at ``t`` instead of filtering the whole index.

A key that may be NULL (a run not started yet has no duration) puts its NULL rows last in
either direction, ordered by id: the rows are read as two segments, the non-NULL values first,
then the NULLs, each bounded and index-ordered on its own. A page that crosses from one segment
to the next costs two queries, every other page one.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Self

from django.core import signing
from django.core.exceptions import EmptyResultSet
from django.db.models import F, Model, Q, QuerySet
from django.db.models.query import ValuesIterable
from rest_framework.exceptions import ValidationError

from common.sql import CompiledValues, unbound_statement_cursor, values_rows
from common.time import to_utc

CURSOR_SALT = "runs.keyset-cursor"
SORT_ALIAS = "keyset_value"
Direction = Literal["older", "newer"]
ValueKind = Literal["datetime", "int", "duration", "str"]
INVALID_CURSOR = "Invalid or tampered cursor."


@dataclass(frozen=True)
class Ordering:
    """One order of a keyset list: ``name`` as the API spells it (``-createdAt``), the
    expression sorted on, its direction and whether it may be NULL, and how a cursor holds it."""

    name: str
    expression: Any
    descending: bool = True
    nullable: bool = False
    kind: ValueKind = "datetime"

    @property
    def segments(self) -> tuple[bool | None, ...]:
        """Each segment's ``isnull`` filter: the values, then the NULLs (nullable keys only)."""
        return (False, True) if self.nullable else (None,)


CREATED_NEWEST_FIRST = Ordering("-createdAt", F("created_at"))
CREATED_OLDEST_FIRST = Ordering("createdAt", F("created_at"), descending=False)


@dataclass(frozen=True)
class Position:
    """A row's place in an order: its sort value (None in the NULL segment) and id. A cursor
    ``newer`` reads towards the start of the order, ``older`` (the default) towards its end."""

    value: Any
    pk: int
    direction: Direction = "older"
    sort: str = CREATED_NEWEST_FIRST.name

    @property
    def segment(self) -> int:
        return 1 if self.value is None else 0


@dataclass
class Page:
    items: list[Any]
    older: Position | None
    newer: Position | None


def _encode_value(value: Any, kind: ValueKind) -> Any:
    if value is None:
        return None
    if kind == "datetime":
        return value.isoformat()
    if kind == "duration":
        return value // timedelta(microseconds=1)
    return value


def _decode_value(raw: Any, kind: ValueKind) -> Any:
    if raw is None:
        return None
    if kind == "datetime":
        return to_utc(datetime.fromisoformat(raw))
    if kind == "duration":
        return timedelta(microseconds=int(raw))
    if kind == "int":
        if type(raw) is not int:
            raise TypeError
        return raw
    if type(raw) is not str:
        raise TypeError
    return raw


class InvalidCursor(ValueError):
    """A cursor that was not made here, was changed, or is not of this list."""


def sign_cursor(payload: list[Any], *, salt: str) -> str:
    """The one cursor scheme of every list (runs, pipelines, a run's log, log search): a JSON
    list of the position's values, compressed and signed with the list's own ``salt``, so that a
    cursor of one list is never read as a position in another."""
    return signing.dumps(payload, salt=salt, compress=True)


def read_cursor(cursor: str, *, salt: str, length: int) -> list[Any]:
    """The values a cursor of ``sign_cursor`` holds; ``InvalidCursor`` if it was forged,
    changed, made for another list or holds other than ``length`` values."""
    try:
        payload = signing.loads(cursor, salt=salt)
    except (signing.BadSignature, ValueError, TypeError):
        raise InvalidCursor(INVALID_CURSOR) from None
    if not isinstance(payload, list) or len(payload) != length:
        raise InvalidCursor(INVALID_CURSOR)
    return payload


def encode_cursor(position: Position, *, ordering: Ordering = CREATED_NEWEST_FIRST) -> str:
    payload = [
        position.sort,
        _encode_value(position.value, ordering.kind),
        position.pk,
        position.direction[0],
    ]
    return sign_cursor(payload, salt=CURSOR_SALT)


def decode_cursor(
    cursor: str, *, ordering: Ordering = CREATED_NEWEST_FIRST, field: str = "cursor"
) -> Position:
    """The position a cursor names; a forged one, or one made under another order, is a 400."""
    try:
        sort, raw, pk, direction = read_cursor(cursor, salt=CURSOR_SALT, length=4)
    except InvalidCursor:
        raise ValidationError({field: [INVALID_CURSOR]}) from None
    if sort != ordering.name:
        raise ValidationError(
            {field: [f"This cursor pages the sort {sort!r}, not {ordering.name!r}."]}
        )
    try:
        value = _decode_value(raw, ordering.kind)
        if value is None and not ordering.nullable:
            raise TypeError
        position = Position(
            value=value,
            pk=int(pk),
            direction="newer" if direction == "n" else "older",
            sort=str(sort),
        )
    except (ValueError, TypeError, OverflowError):
        raise ValidationError({field: [INVALID_CURSOR]}) from None
    return position


def position_of(row: Any, ordering: Ordering, direction: Direction = "older") -> Position:
    """The position of a row read through ``keyset_page`` or ``keyset_iterate``: a model
    instance, or a dict from a ``.values()`` queryset (which must include ``id``)."""
    if isinstance(row, dict):
        return Position(row[SORT_ALIAS], row["id"], direction, ordering.name)
    return Position(getattr(row, SORT_ALIAS), row.pk, direction, ordering.name)


def _order_by(ordering: Ordering, *, reverse: bool) -> list[Any]:
    descending = ordering.descending != reverse
    value, pk = F(SORT_ALIAS), F("pk")
    if not ordering.nullable:
        return [value.desc(), pk.desc()] if descending else [value.asc(), pk.asc()]
    # The index order (NULLs last) read forwards, or backwards for the reverse.
    nulls = {"nulls_first": True} if reverse else {"nulls_last": True}
    return [value.desc(**nulls), pk.desc()] if descending else [value.asc(**nulls), pk.asc()]


def _past(ordering: Ordering, position: Position, *, reverse: bool) -> Q:
    """The rows of ``position``'s segment that come after it (before it with ``reverse``)."""
    downwards = ordering.descending != reverse
    pk_bound = Q(pk__lt=position.pk) if downwards else Q(pk__gt=position.pk)
    if position.value is None:
        return pk_bound
    value = position.value
    if downwards:
        return Q(**{f"{SORT_ALIAS}__lte": value}) & (
            Q(**{f"{SORT_ALIAS}__lt": value}) | (Q(**{SORT_ALIAS: value}) & pk_bound)
        )
    return Q(**{f"{SORT_ALIAS}__gte": value}) & (
        Q(**{f"{SORT_ALIAS}__gt": value}) | (Q(**{SORT_ALIAS: value}) & pk_bound)
    )


def _part(
    annotated: QuerySet,
    ordering: Ordering,
    *,
    segment: tuple[int, bool | None],
    position: Position | None,
    reverse: bool,
    wanted: int,
) -> QuerySet:
    """The query of one segment: up to ``wanted`` rows past ``position`` in the order."""
    index, isnull = segment
    part = annotated if isnull is None else annotated.filter(**{f"{SORT_ALIAS}__isnull": isnull})
    if position is not None and index == position.segment:
        part = part.filter(_past(ordering, position, reverse=reverse))
    return part.order_by(*_order_by(ordering, reverse=reverse))[:wanted]


def _read(
    queryset: QuerySet,
    ordering: Ordering,
    *,
    position: Position | None,
    reverse: bool,
    wanted: int,
) -> list[Any]:
    """Up to ``wanted`` rows past ``position`` in the order (towards its start with ``reverse``),
    segment by segment."""
    annotated = queryset.annotate(**{SORT_ALIAS: ordering.expression})
    segments = list(enumerate(ordering.segments))
    if reverse:
        segments.reverse()
    rows: list[Any] = []
    for index, isnull in segments:
        if position is not None and (
            (index > position.segment) if reverse else (index < position.segment)
        ):
            continue
        part = _part(
            annotated,
            ordering,
            segment=(index, isnull),
            position=position,
            reverse=reverse,
            wanted=wanted - len(rows),
        )
        rows += values_rows(part) if part._iterable_class is ValuesIterable else list(part)
        if len(rows) >= wanted:
            break
    return rows


def _forward_page(
    rows: list[Any], *, position: Position | None, limit: int, ordering: Ordering
) -> Page:
    """The page of up to ``limit + 1`` rows read past ``position`` towards the order's end."""
    items = rows[:limit]
    older = position_of(items[-1], ordering) if items and len(rows) > limit else None
    newer = position_of(items[0], ordering, "newer") if items and position is not None else None
    return Page(items=items, older=older, newer=newer)


def keyset_page[M: Model](
    queryset: QuerySet[M],
    *,
    position: Position | None,
    limit: int,
    ordering: Ordering = CREATED_NEWEST_FIRST,
) -> Page:
    if position is None or position.direction == "older":
        rows = _read(queryset, ordering, position=position, reverse=False, wanted=limit + 1)
        return _forward_page(rows, position=position, limit=limit, ordering=ordering)
    rows = _read(queryset, ordering, position=position, reverse=True, wanted=limit + 1)
    items = list(reversed(rows[:limit]))
    older = position_of(items[-1], ordering) if items else None
    newer = position_of(items[0], ordering, "newer") if items and len(rows) > limit else None
    return Page(items=items, older=older, newer=newer)


@dataclass(frozen=True)
class FirstPage:
    """The first page of a ``.values()`` queryset in an order read in one segment, compiled
    once (``common.sql.CompiledValues``): ``read()`` gives the page ``keyset_page`` would."""

    statement: CompiledValues
    limit: int
    ordering: Ordering

    @classmethod
    def of(cls, queryset: QuerySet, *, limit: int, ordering: Ordering) -> Self | None:
        """None for an order read in two segments (a nullable key), whose first page may take
        a statement per segment."""
        if len(ordering.segments) != 1:
            return None
        annotated = queryset.annotate(**{SORT_ALIAS: ordering.expression})
        part = _part(
            annotated,
            ordering,
            segment=(0, ordering.segments[0]),
            position=None,
            reverse=False,
            wanted=limit + 1,
        )
        return cls(CompiledValues.of(part), limit, ordering)

    def read(self) -> Page:
        rows = self.statement.rows()
        return _forward_page(rows, position=None, limit=self.limit, ordering=self.ordering)


def keyset_iterate(
    queryset: QuerySet, *, ordering: Ordering = CREATED_NEWEST_FIRST, chunk: int = 1000
) -> Iterator[Any]:
    """Every row of ``queryset`` in the order, read ``chunk`` rows per query: memory stays flat
    however many rows match, and no query holds a cursor open between chunks. A ``.values()``
    queryset (with ``id``) yields dicts, several times cheaper than model instances."""
    position = None
    while True:
        rows = _read(queryset, ordering, position=position, reverse=False, wanted=chunk)
        yield from rows
        if len(rows) < chunk:
            return
        position = position_of(rows[-1], ordering)


@dataclass(frozen=True)
class BoundedCount:
    """How many rows of a queryset match, counted to at most ``cap + 1``, compiled once:
    ``count()`` counts what the database holds then. A count over a LIMIT subquery, so a filter
    matching a million rows costs what ``cap`` rows cost. The subquery is compiled as it stands
    and wrapped in SQL: ``QuerySet.count`` on a slice clones and compiles the query again to wrap
    it, which cost more than PostgreSQL took to count. ``sql`` is None for a filter no row can
    match (``pk__in=[]``, ``.none()``)."""

    sql: str | None
    params: tuple[Any, ...]
    using: str
    cap: int

    @classmethod
    def of(cls, queryset: QuerySet, *, cap: int) -> Self:
        try:
            limited = queryset.order_by().values("pk")[: cap + 1]
            sql, params = limited.query.get_compiler(using=queryset.db).as_sql()
        except EmptyResultSet:
            return cls(None, (), queryset.db, cap)
        sql = f"SELECT COUNT(*) FROM ({sql}) counted"  # noqa: S608
        return cls(sql, tuple(params), queryset.db, cap)

    def count(self) -> int:
        if self.sql is None:
            return 0
        with unbound_statement_cursor(self.params, using=self.using) as cursor:
            cursor.execute(self.sql, self.params)
            return cursor.fetchone()[0]


def bounded_count(queryset: QuerySet, *, cap: int) -> int:
    """How many rows match, counted to at most ``cap + 1`` (``BoundedCount``)."""
    return BoundedCount.of(queryset, cap=cap).count()
