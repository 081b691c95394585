"""The hand-written SQL of the hot path, in one place: the few statements every runner request
makes, and every run write reuses.

The ORM compiles a query anew on every call; for a lookup joined to its relations that costs
several times what PostgreSQL takes to run it (bench/RESULTS.md, and ``python -m bench.orm_vs_sql``
re-measures the choice on each Django upgrade). These helpers build the same instances the ORM
would (every concrete column, converted by the same converters) from SQL built once per call
from the model's metadata, so a new column is read and written without anyone editing SQL.
"""

import functools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Self, cast

import orjson
from django.conf import settings
from django.core.exceptions import EmptyResultSet
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import Field, Model, QuerySet
from django.db.models.query import ValuesIterable


@functools.cache
def _converters(model: type[Model], vendor: str) -> list[tuple[Any, list[Any]]]:
    """Per concrete column of ``model``: the column and the converters the ORM would apply to
    its values, looked up once per process rather than once per row."""
    columns = []
    for field in model._meta.concrete_fields:
        column = field.get_col(model._meta.db_table)
        converters = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
        columns.append((column, converters))
    return columns


def instance_from_row[M: Model](model: type[M], values: Sequence[Any]) -> M:
    """A model instance from its concrete columns, in ``_meta.concrete_fields`` order."""
    converted = []
    for (column, converters), value in zip(
        _converters(model, connection.vendor), values, strict=True
    ):
        for convert in converters:
            value = convert(value, column, connection)
        converted.append(value)
    # Every concrete field is given, in order: the field names may be left out (None).
    return model.from_db(connection.alias, cast(Any, None), converted)


@functools.cache
def _preparing_cursor_class() -> type:
    from psycopg import ClientCursor, Cursor

    class Logged:
        """What Django's query log reads of a statement (``cursor._query.query``): its text
        with the parameters bound, as Django's own cursor would have sent it, composed only
        when read (a prepared statement leaves psycopg nothing to show there)."""

        __slots__ = ("cursor", "params", "sql")

        def __init__(self, cursor, sql, params):
            self.cursor, self.sql, self.params = cursor, sql, params

        @property
        def query(self) -> bytes:
            return ClientCursor(self.cursor.connection).mogrify(self.sql, self.params).encode()

    class PreparingCursor(Cursor):
        """Binds on the server and prepares every statement it runs."""

        def execute(self, query, params=None, *, prepare=None, binary=None):
            result = super().execute(query, params, prepare=True, binary=binary)
            self._query = cast(Any, Logged(self, query, params))
            return result

    return PreparingCursor


def statement_cursor():
    """A cursor for the statements of this module. On PostgreSQL it prepares them: each is
    planned once per connection instead of on every request (planning the append's statement
    costs more than running it), unless ``settings.PREPARE_HOT_STATEMENTS`` is off (a pooler in
    transaction mode, whose next transaction may get another server connection). Otherwise,
    and on SQLite, Django's own cursor; either way Django's wrapper, so its execute wrappers,
    query log and error translation see every statement."""
    if connection.vendor != "postgresql" or not settings.PREPARE_HOT_STATEMENTS:
        return connection.cursor()
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    connection.validate_thread_sharing()
    with connection.wrap_database_errors:
        cursor = _preparing_cursor_class()(connection.connection)
    if connection.queries_logged:
        return connection.make_debug_cursor(cursor)
    return connection.make_cursor(cursor)


def unbound_statement_cursor(params: Sequence[Any], *, using: str = DEFAULT_DB_ALIAS):
    """``statement_cursor`` for an ORM-compiled statement with nothing to bind, else Django's
    cursor of ``using``. With no parameters a statement has one plan, the one PostgreSQL would
    make each time, so it can be planned once per connection; a statement with parameters is
    planned for each request's values (a rare status and a common one may want different
    indexes)."""
    if params or using != DEFAULT_DB_ALIAS:
        return connections[using].cursor()
    return statement_cursor()


@dataclass(frozen=True)
class CompiledValues:
    """A ``.values()`` queryset compiled once, to be run as often as wanted: each ``rows()``
    reads what the database holds then, as iterating the queryset would give it, on
    ``unbound_statement_cursor``. A process can keep the statement of a list that binds
    nothing (an unfiltered first page) and skip building and compiling its queryset on every
    request. ``sql`` is None for a filter no row can match."""

    sql: str | None
    params: tuple[Any, ...]
    using: str
    compiler: Any
    names: tuple[str, ...]

    @classmethod
    def of(cls, queryset: QuerySet) -> Self:
        if queryset._iterable_class is not ValuesIterable:
            raise TypeError("CompiledValues reads .values() querysets")
        query = queryset.query
        compiler = query.get_compiler(using=queryset.db)
        try:
            sql, params = compiler.as_sql()
        except EmptyResultSet:  # a filter no row can match
            sql, params = None, ()
        names = tuple(
            query.selected
            if query.selected
            else [*query.extra_select, *query.values_select, *query.annotation_select]
        )
        return cls(sql, tuple(params), queryset.db, compiler, names)

    def rows(self) -> list[dict[str, Any]]:
        if self.sql is None:
            return []
        with unbound_statement_cursor(self.params, using=self.using) as cursor:
            cursor.execute(self.sql, self.params)
            fetched = cursor.fetchall()
        compiler = self.compiler
        if compiler.has_extra_select:  # ordering columns beyond the selected ones
            fetched = [row[: compiler.col_count] for row in fetched]
        names = self.names
        return [dict(zip(names, row, strict=True)) for row in compiler.results_iter([fetched])]


def values_rows(queryset: QuerySet) -> list[dict[str, Any]]:
    """The rows of a ``.values()`` queryset, as iterating it would give them, run on
    ``unbound_statement_cursor`` (``CompiledValues``, compiled for this one read): the
    unfiltered first page of a list is planned once per connection (planning the runs list's
    page, joined to its pipeline and gateway, cost more than running it)."""
    return CompiledValues.of(queryset).rows()


def _row_lock_sql() -> str:
    """``FOR NO KEY UPDATE OF t`` where the database has it: it serializes writers of the row
    exactly like ``FOR UPDATE`` but does not block transactions that only insert rows referencing
    it. SQLite has no row locks; its IMMEDIATE transactions serialize writers instead."""
    if not connection.features.has_select_for_update:
        return ""
    return connection.ops.for_update_sql(
        no_key=connection.features.has_select_for_no_key_update,
        of=("t",) if connection.features.has_select_for_update_of else (),
    )


def select_joined[M: Model](
    model: type[M],
    relations: Sequence[str],
    *,
    filters: dict[str, Any],
    lock: bool = False,
) -> M | None:
    """One ``model`` row matching ``filters`` (column attnames; a list or tuple value means
    ``IN``) with the to-one ``relations`` it names, as ``select_related`` would load them: joined
    LEFT OUTER when the foreign key is nullable. With ``lock``, the row (not its relations) stays
    locked until the transaction ends."""
    sql, related = _select_sql(model, tuple(relations), _shape(filters), lock)
    with statement_cursor() as cursor:
        cursor.execute(sql, _condition_params(model, filters))
        row = cursor.fetchone()
    return _joined_instance(model, related, row)


@dataclass(frozen=True)
class Beside[N: Model]:
    """A second row for ``select_joined_beside``: the ``model`` row matching ``filters`` whose
    column ``on[0]`` equals the first row's column ``on[1]`` (attnames), with its ``relations``."""

    model: type[N]
    relations: tuple[str, ...]
    filters: dict[str, Any]
    on: tuple[str, str]


def select_joined_beside[M: Model, N: Model](
    model: type[M], relations: Sequence[str], *, filters: dict[str, Any], beside: Beside[N]
) -> tuple[M | None, N | None]:
    """``select_joined`` of ``model``, and in the same statement the ``beside`` row that goes
    with it (None when there is none): one round trip and one plan where two lookups, the second
    keyed by the first, would take two (a credential and the run its request names)."""
    sql, related, beside_related = _beside_sql(
        model,
        tuple(relations),
        _shape(filters),
        beside.model,
        beside.relations,
        _shape(beside.filters),
        beside.on,
    )
    params = _condition_params(beside.model, beside.filters) + _condition_params(model, filters)
    with statement_cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None, None
    width = len(model._meta.concrete_fields) + sum(
        len(field.related_model._meta.concrete_fields) for field in related
    )
    first = _joined_instance(model, related, row[:width])
    pk_at = [field.attname for field in beside.model._meta.concrete_fields].index(
        beside.model._meta.pk.attname
    )
    second = None
    if row[width + pk_at] is not None:
        second = _joined_instance(beside.model, beside_related, row[width:])
    return first, second


@functools.cache
def _beside_sql(
    model: type[Model],
    relations: tuple[str, ...],
    shape: tuple[tuple[str, int], ...],
    beside: type[Model],
    beside_relations: tuple[str, ...],
    beside_shape: tuple[tuple[str, int], ...],
    on: tuple[str, str],
) -> tuple[str, list[Any], list[Any]]:
    quote = connection.ops.quote_name
    related, columns, joins = _columns_and_joins(model, relations)
    beside_related, beside_columns, beside_joins = _columns_and_joins(
        beside, beside_relations, alias="b"
    )
    # The second table with its own joins in parentheses, joined LEFT OUTER to the first row:
    # its columns are NULL when it has no such row.
    matched = (
        f"b.{quote(_field_by_attname(beside, on[0]).column)} = "
        f"t.{quote(_field_by_attname(model, on[1]).column)}"
    )
    sql = (
        f"SELECT {columns}, {beside_columns} FROM {quote(model._meta.db_table)} t {joins} "  # noqa: S608
        f"LEFT OUTER JOIN ({quote(beside._meta.db_table)} b {beside_joins}) "
        f"ON {_conditions_sql(beside, beside_shape, alias='b')} AND {matched} "
        f"WHERE {_conditions_sql(model, shape)}"
    )
    return sql, related, beside_related


def _shape(filters: dict[str, Any]) -> tuple[tuple[str, int], ...]:
    """What the SQL of ``filters`` depends on: the columns, and how many values each ``IN``
    holds (-1 for ``=``); the statement text is built once per shape and process."""
    return tuple(
        (name, len(value) if isinstance(value, list | tuple) else -1)
        for name, value in filters.items()
    )


@functools.cache
def _select_sql(
    model: type[Model],
    relations: tuple[str, ...],
    shape: tuple[tuple[str, int], ...],
    lock: bool,
    extra: str = "",
) -> tuple[str, list[Any]]:
    """What ``select_joined`` runs; ``extra``, a column expression selected after the rows'
    columns, may name the relations by their aliases (``r0``, ``r1``...)."""
    quote = connection.ops.quote_name
    # Forward to-one relations: each has a related model, a column and a target field.
    related, columns, joins = _columns_and_joins(model, relations)
    if extra:
        columns = f"{columns}, {extra}"
    sql = (
        f"SELECT {columns} FROM {quote(model._meta.db_table)} t {joins} "  # noqa: S608
        f"WHERE {_conditions_sql(model, shape)} {_row_lock_sql() if lock else ''}"
    )
    return sql, related


def _conditions_sql(
    model: type[Model], shape: tuple[tuple[str, int], ...], alias: str = "t"
) -> str:
    quote = connection.ops.quote_name
    conditions = []
    for attname, size in shape:
        column = f"{alias}.{quote(_field_by_attname(model, attname).column)}"
        if size >= 0:
            conditions.append(f"{column} IN ({', '.join(['%s'] * size)})")
        else:
            conditions.append(f"{column} = %s")
    return " AND ".join(conditions)


def _condition_params(model: type[Model], filters: dict[str, Any]) -> list[Any]:
    params: list[Any] = []
    for attname, value in filters.items():
        field = _field_by_attname(model, attname)
        if isinstance(value, list | tuple):
            params.extend(field.get_db_prep_value(item, connection) for item in value)
        else:
            params.append(field.get_db_prep_value(value, connection))
    return params


def _columns_and_joins(
    model: type[Model], relations: Sequence[str], alias: str = "t"
) -> tuple[list[Any], str, str]:
    """The ``relations`` fields, the column list of ``t`` (the model, or ``alias``) and its
    relations ``r0``, ``r1``... (``<alias>r0``... for another alias), and their joins: what
    ``select_joined`` selects."""
    quote = connection.ops.quote_name
    prefix = "" if alias == "t" else alias
    related: list[Any] = [model._meta.get_field(name) for name in relations]
    tables: list[tuple[str, Any]] = [(alias, model)] + [
        (f"{prefix}r{index}", field.related_model) for index, field in enumerate(related)
    ]
    columns = ", ".join(
        f"{table_alias}.{quote(field.column)}"
        for table_alias, table_model in tables
        for field in table_model._meta.concrete_fields
    )
    joins = " ".join(
        f"{'LEFT OUTER' if field.null else 'INNER'} JOIN "
        f"{quote(field.related_model._meta.db_table)} {prefix}r{index} "
        f"ON {prefix}r{index}.{quote(field.target_field.column)} = {alias}.{quote(field.column)}"
        for index, field in enumerate(related)
    )
    return related, columns, joins


def _joined_instance[M: Model](
    model: type[M], related: Sequence[Any], row: Sequence[Any] | None
) -> M | None:
    if row is None:
        return None
    start = len(model._meta.concrete_fields)
    instance = instance_from_row(model, row[:start])
    for field in related:
        width = len(field.related_model._meta.concrete_fields)
        values = row[start : start + width]
        start += width
        target = None
        if getattr(instance, field.attname) is not None:
            target = instance_from_row(field.related_model, values)
        setattr(instance, field.name, target)
    return instance


def _field_by_attname(model: type[Model], attname: str) -> Any:
    for field in model._meta.concrete_fields:
        if field.attname == attname:
            return field
    raise LookupError(f"{model.__name__} has no column {attname!r}")


def insert_rows(model: type[Model], rows: list[dict[str, Any]]) -> None:
    """INSERT ``rows`` (dicts with the same keys, field attnames) in as few statements as the
    database's parameter limit allows: ``bulk_create`` compiles its statement anew on every call,
    which costs more than storing one log line."""
    if not rows:
        return
    fields = [_field_by_attname(model, name) for name in rows[0]]
    quote = connection.ops.quote_name
    table: Any = model._meta.db_table
    head = (
        f"INSERT INTO {quote(table)} "  # noqa: S608
        f"({', '.join(quote(field.column) for field in fields)}) VALUES "
    )
    row_sql = "(" + ", ".join(["%s"] * len(fields)) + ")"
    batch = connection.ops.bulk_batch_size(fields, rows) or len(rows)
    with connection.cursor() as cursor:
        for start in range(0, len(rows), batch):
            chunk = rows[start : start + batch]
            params = [
                field.get_db_prep_save(row[field.attname], connection)
                for row in chunk
                for field in fields
            ]
            cursor.execute(head + ", ".join([row_sql] * len(chunk)), params)


def update_columns(instance: Model, fields: Iterable[Field]) -> None:
    """Store ``fields`` of ``instance`` in one UPDATE by primary key."""
    columns: list[Any] = list(fields)
    pk_field: Any = instance._meta.pk
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(field.column)} = %s" for field in columns)
    params = [
        field.get_db_prep_save(getattr(instance, field.attname), connection) for field in columns
    ]
    table = quote(cast(str, instance._meta.db_table))
    pk_column = quote(pk_field.column)
    with statement_cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET {assignments} WHERE {pk_column} = %s",  # noqa: S608
            [*params, instance.pk],
        )


def touch_row(model: type[Model], *, key_field: str, key: Any, field: str, value: Any) -> int:
    """``UPDATE <table> SET <field> = value WHERE <key_field> = key``: one indexed UPDATE, the
    benchmark's floor (``config.bench_urls``). Answers the rows updated."""
    quote = connection.ops.quote_name
    target: Any = model._meta.get_field(field)
    where: Any = model._meta.get_field(key_field)
    table = quote(cast(str, model._meta.db_table))
    with statement_cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET {quote(target.column)} = %s "  # noqa: S608
            f"WHERE {quote(where.column)} = %s",
            [target.get_db_prep_save(value, connection), key],
        )
        return cursor.rowcount


def one_statement_append_supported() -> bool:
    """Whether ``append_children`` can run here: PostgreSQL, whose data-modifying CTEs and
    ``json_to_recordset`` make a locked append one statement (SQLite has neither)."""
    return connection.vendor == "postgresql"


def append_children[M: Model](
    model: type[M],
    relations: Sequence[str],
    *,
    filters: dict[str, Any],
    unless: str,
    child: type[Model],
    seq_field: str,
    rows: list[dict[str, Any]],
    cap: int,
    trim_every: int,
    assign: dict[str, Any],
) -> M | None:
    """Append ``rows`` (dicts with the same keys, ``child`` attnames) to the ``model`` row
    matching ``filters``, in ONE statement (PostgreSQL): lock the row, insert the rows after its
    last sequence number (``seq_field``), trim the oldest beyond ``cap`` (after a batch, or once
    every ``trim_every`` single appends), store the new sequence number and ``assign`` (attname:
    value), and answer the updated row with its to-one ``relations``, like ``select_joined``.

    The rows travel as one JSON array (``_rows_param``), so a 500-line batch binds a handful of
    parameters, not 3000. None, with nothing written, when no row matches or the row's boolean
    ``unless`` is true; the caller's general path then answers why.
    """
    fields = [_field_by_attname(child, name) for name in rows[0]]
    set_fields = [_field_by_attname(model, name) for name in assign]
    sql, related = _append_sql(
        model,
        tuple(relations),
        _shape(filters),
        unless,
        child,
        seq_field,
        tuple(field.attname for field in fields),
        tuple(field.attname for field in set_fields),
    )
    count = len(rows)
    params = [
        *_condition_params(model, filters),
        _rows_param(rows),
        count,
        cap,
        count,
        count,
        trim_every,
        count,
        *(field.get_db_prep_save(assign[field.attname], connection) for field in set_fields),
    ]
    with statement_cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return _joined_instance(model, related, row)


def _rows_param(rows: list[dict[str, Any]]) -> str:
    """The rows as one JSON array of objects, for ``json_to_recordset``: orjson writes 100 log
    lines in about 20 µs, where preparing their 400 values field by field and binding them as
    arrays cost about 0.7 ms (bench/RESULTS.md). The rows hold what log lines hold: text, and
    instants, which orjson writes with their offset."""
    return orjson.dumps(rows).decode()


@functools.cache
def _append_sql(
    model: type[Model],
    relations: tuple[str, ...],
    shape: tuple[tuple[str, int], ...],
    unless: str,
    child: type[Model],
    seq_field: str,
    child_attnames: tuple[str, ...],
    assigned: tuple[str, ...],
) -> tuple[str, list[Any]]:
    """The statement of ``append_children``, built once per shape and process."""
    quote = connection.ops.quote_name
    table = quote(cast(str, model._meta.db_table))
    pk: Any = model._meta.pk
    sequence = _field_by_attname(model, seq_field)
    guard = _field_by_attname(model, unless)
    parent: Any = next(
        field
        for field in child._meta.concrete_fields
        if field.is_relation and field.related_model is model
    )
    child_seq = _field_by_attname(child, "seq")
    fields = [_field_by_attname(child, name) for name in child_attnames]
    names = [f"c{index}" for index in range(len(fields))]
    child_table = quote(cast(str, child._meta.db_table))
    assignments = ", ".join(
        f"{quote(_field_by_attname(model, name).column)} = %s" for name in assigned
    )
    related, columns, joins = _columns_and_joins(model, relations)
    child_columns = ", ".join(quote(field.column) for field in [parent, child_seq, *fields])
    # The rows' columns, read from the JSON objects' keys (the attnames) as these types.
    definitions = ", ".join(f"{quote(f.attname)} {f.db_type(connection)}" for f in fields)
    sql = (
        f"WITH locked AS ("  # noqa: S608
        f"SELECT t.{quote(pk.column)} AS id, t.{quote(sequence.column)} AS last FROM {table} t "
        f"WHERE {_conditions_sql(model, shape)} AND NOT t.{quote(guard.column)} "
        "FOR NO KEY UPDATE), "
        f"added AS (INSERT INTO {child_table} ({child_columns}) "
        f"SELECT locked.id, locked.last + u.ord, {', '.join(f'u.{name}' for name in names)} "
        f"FROM locked, ROWS FROM (json_to_recordset(%s::json) AS ({definitions})) "
        f"WITH ORDINALITY AS u({', '.join(names)}, ord)), "
        f"trimmed AS (DELETE FROM {child_table} d USING locked "
        f"WHERE d.{quote(parent.column)} = locked.id "
        f"AND d.{quote(child_seq.column)} <= locked.last + %s - %s "
        f"AND (%s > 1 OR (locked.last + %s) %% %s = 0)), "
        f"t AS (UPDATE {table} w SET {quote(sequence.column)} = locked.last + %s, {assignments} "
        f"FROM locked WHERE w.{quote(pk.column)} = locked.id RETURNING w.*) "
        f"SELECT {columns} FROM t {joins}"
    )
    return sql, related


class RawJSON:
    """JSON text the database wrote, passed to the API renderer as is (``common.api.renderers``
    embeds it without decoding and re-encoding it)."""

    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text


def rows_json_supported() -> bool:
    """Whether ``rows_json`` can run here (PostgreSQL's JSON functions)."""
    return connection.vendor == "postgresql"


def _iso_sql(column: str) -> str:
    """A timestamptz as the JSON string ``common.time.iso`` writes: UTC, ``Z``, the microseconds
    only when there are any. One ``to_char`` a value, its pattern picked by whether the instant
    is a whole second (``to_char`` is the costly part)."""
    second = 'YYYY-MM-DD"T"HH24:MI:SS'
    return (
        f"'\"' || to_char({column} AT TIME ZONE 'UTC', CASE WHEN date_trunc('second', {column}) "
        f"= {column} THEN '{second}\"Z\"' ELSE '{second}.US\"Z\"' END) || '\"'"
    )


def _json_key(key: str) -> str:
    """``"key":`` as a SQL string literal (the keys are the code's, never a request's)."""
    text = json.dumps(key) + ":"
    return "'" + text.replace("'", "''").replace("%", "%%") + "'"


@functools.cache
def _rows_json_sql(
    model: type[Model],
    keys: tuple[tuple[str, str], ...],
    omit_empty: tuple[str, ...],
    merge: str | None,
    parent: str,
    written: str | None,
) -> str:
    """Each row's object written as text (``'{"at":' || ...``), the values by ``to_json``
    (which escapes strings as JSON does), the ``merge`` object's members by its own text after
    the other keys, and the rows joined with commas: PostgreSQL's ``json_build_object``, and
    the jsonb merge (``||``) most of all, cost about twice as much per row (bench/RESULTS.md).
    A row whose ``written`` column holds its text already is joined as it is."""
    quote = connection.ops.quote_name
    pieces = []
    for index, (key, attname) in enumerate(keys):
        field = _field_by_attname(model, attname)
        column = f"t.{quote(field.column)}"
        if field.get_internal_type() == "DateTimeField":
            value = _iso_sql(column)
        else:
            value = f"to_json({column})::text"
        separator = "," if index else "{"
        if key in omit_empty:
            if not index:
                raise ValueError("the first key cannot be left out")
            pieces.append(
                f"CASE WHEN coalesce({column}, '') = '' THEN '' "
                f"ELSE '{separator}' || {_json_key(key)} || {value} END"
            )
        else:
            pieces.append(f"'{separator}' || {_json_key(key)} || coalesce({value}, 'null')")
    if merge is not None:
        # A non-empty JSON object's text is "{...}": its members follow the keys above.
        members = f"t.{quote(_field_by_attname(model, merge).column)}"
        pieces.append(
            f"CASE WHEN {members} = '{{}}' THEN '}}' ELSE ',' || substr({members}::text, 2) END"
        )
    else:
        pieces.append("'}'")
    row = " || ".join(pieces)
    if written is not None:
        row = f"coalesce(t.{quote(_field_by_attname(model, written).column)}, {row})"
    seq = quote(_field_by_attname(model, "seq").column)
    return (
        f"SELECT '[' || coalesce(string_agg({row}, ',' ORDER BY t.{seq}), '') || ']' "  # noqa: S608
        f"FROM {quote(cast(str, model._meta.db_table))} t "
        f"WHERE t.{quote(_field_by_attname(model, parent).column)} = %s AND t.{seq} > %s"
    )


def rows_json(
    model: type[Model],
    *,
    keys: dict[str, str],
    parent: str,
    parent_pk: Any,
    after_seq: int,
    omit_empty: Iterable[str] = (),
    merge: str | None = None,
    written: str | None = None,
) -> RawJSON:
    """The ``model`` rows of one parent (``parent`` attname = ``parent_pk``) after sequence
    number ``after_seq``, oldest first, as a JSON array written by PostgreSQL in one pass: each
    row an object of ``keys`` (JSON key: attname; instants as ``common.time.iso`` writes them;
    the ``omit_empty`` keys left out when empty), merged with the JSON object column ``merge``
    (whose members follow the keys; it never holds one of them). A row's ``written`` column,
    where it is not NULL, is that object's text as the database wrote it when storing the row.
    Building 2000 objects in Python (and decoding 2000 jsonb values twice, as psycopg and
    Django's JSONField do) cost most of a full runner answer."""
    sql = _rows_json_sql(model, tuple(keys.items()), tuple(omit_empty), merge, parent, written)
    with statement_cursor() as cursor:
        cursor.execute(sql, [parent_pk, after_seq])
        (text,) = cursor.fetchone()
    return RawJSON(text)


@functools.cache
def _permission_names_sql(
    user_model: type[Model], everything: bool, user: str = "%s", joined: bool = False
) -> str:
    """The names of a person's permissions (every one there is with ``everything``): rows of
    ``(app_label, codename)``, or with ``joined`` one ``app_label.codename`` column. ``user`` is
    the person's id: a parameter, or a column of an outer statement."""
    from django.contrib.auth.models import Group, Permission

    quote = connection.ops.quote_name
    content_type: Any = Permission._meta.get_field("content_type")
    app_label = quote(content_type.related_model._meta.get_field("app_label").column)
    codename = quote(cast(Any, Permission._meta.get_field("codename")).column)
    names = f"ct.{app_label} || '.' || p.{codename}" if joined else f"ct.{app_label}, p.{codename}"
    sql = (
        f"SELECT {names} "  # noqa: S608
        f"FROM {quote(Permission._meta.db_table)} p "
        f"INNER JOIN {quote(content_type.related_model._meta.db_table)} ct "
        f"ON ct.{quote(content_type.target_field.column)} = p.{quote(content_type.column)}"
    )
    if everything:
        return sql
    own: Any = user_model._meta.get_field("user_permissions")
    groups: Any = user_model._meta.get_field("groups")
    granted: Any = Group._meta.get_field("permissions")

    def through(field: Any) -> tuple[str, str, str]:
        """A many-to-many's table, its column to the model holding the field, and to the other."""
        return (
            quote(field.remote_field.through._meta.db_table),
            quote(field.m2m_column_name()),
            quote(field.m2m_reverse_name()),
        )

    own_table, own_user, own_permission = through(own)
    groups_table, groups_user, groups_group = through(groups)
    granted_table, granted_group, granted_permission = through(granted)
    return (
        f"{sql} WHERE p.{quote(cast(Any, Permission._meta.pk).column)} IN ("  # noqa: S608
        f"SELECT {own_permission} FROM {own_table} WHERE {own_user} = {user} "
        f"UNION SELECT g.{granted_permission} FROM {granted_table} g "
        f"INNER JOIN {groups_table} m ON m.{groups_group} = g.{granted_group} "
        f"WHERE m.{groups_user} = {user})"
    )


def permission_names(user: Model, *, everything: bool = False) -> set[str]:
    """``"app_label.codename"`` of every permission ``user`` holds, their own and their groups',
    in one statement (what ``ModelBackend`` reads in two ORM queries); every permission there is
    with ``everything`` (a superuser's)."""
    sql = _permission_names_sql(type(user), everything)
    with statement_cursor() as cursor:
        cursor.execute(sql, [] if everything else [user.pk, user.pk])
        return {f"{app_label}.{codename}" for app_label, codename in cursor.fetchall()}


def select_joined_with_permissions[M: Model](
    model: type[M], person: str, *, filters: dict[str, Any]
) -> tuple[M | None, set[str] | None]:
    """``select_joined(model, [person])`` for a row whose to-one ``person`` is a user (an API
    key's), and in the same statement the ``"app_label.codename"`` names of every permission that
    person holds, as ``permission_names`` reads them. On other databases than PostgreSQL, the
    names are None: they are read when first checked."""
    if connection.vendor != "postgresql":
        return select_joined(model, [person], filters=filters), None
    sql, related = _select_with_permissions_sql(model, person, _shape(filters))
    with statement_cursor() as cursor:
        cursor.execute(sql, _condition_params(model, filters))
        row = cursor.fetchone()
    if row is None:
        return None, None
    return _joined_instance(model, related, row[:-1]), set(row[-1])


@functools.cache
def _select_with_permissions_sql(
    model: type[Model], person: str, shape: tuple[tuple[str, int], ...]
) -> tuple[str, list[Any]]:
    quote = connection.ops.quote_name
    user_model: Any = model._meta.get_field(person).related_model
    # The person is the statement's first relation: r0.
    user = f"r0.{quote(user_model._meta.pk.column)}"
    superuser = f"r0.{quote(user_model._meta.get_field('is_superuser').column)}"
    everything = _permission_names_sql(user_model, True, joined=True)
    held = _permission_names_sql(user_model, False, user=user, joined=True)
    names = f"CASE WHEN {superuser} THEN ARRAY({everything}) ELSE ARRAY({held}) END"
    return _select_sql(model, (person,), shape, False, extra=names)
