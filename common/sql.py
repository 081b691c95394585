"""The hand-written SQL of the hot path, in one place: the few statements every runner request
makes, and every run write reuses.

The ORM compiles a query anew on every call; for a lookup joined to its relations that costs
several times what PostgreSQL takes to run it (bench/RESULTS.md, and ``python -m bench.orm_vs_sql``
re-measures the choice on each Django upgrade). These helpers build the same instances the ORM
would (every concrete column, converted by the same converters) from SQL built once per call
from the model's metadata, so a new column is read and written without anyone editing SQL.
"""

from collections.abc import Iterable, Sequence
from typing import Any, cast

from django.db import connection
from django.db.models import Field, Model


def instance_from_row[M: Model](model: type[M], values: Sequence[Any]) -> M:
    """A model instance from its concrete columns, in ``_meta.concrete_fields`` order."""
    converted = []
    for field, value in zip(model._meta.concrete_fields, values, strict=True):
        column = field.get_col(model._meta.db_table)
        for convert in connection.ops.get_db_converters(column) + column.get_db_converters(
            connection
        ):
            value = convert(value, column, connection)
        converted.append(value)
    # Every concrete field is given, in order: the field names may be left out (None).
    return model.from_db(connection.alias, cast(Any, None), converted)


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
    quote = connection.ops.quote_name
    # Forward to-one relations: each has a related model, a column and a target field.
    related: list[Any] = [model._meta.get_field(name) for name in relations]
    tables: list[tuple[str, Any]] = [("t", model)] + [
        (f"r{index}", field.related_model) for index, field in enumerate(related)
    ]
    columns = ", ".join(
        f"{alias}.{quote(field.column)}"
        for alias, table_model in tables
        for field in table_model._meta.concrete_fields
    )
    joins = " ".join(
        f"{'LEFT OUTER' if field.null else 'INNER'} JOIN "
        f"{quote(field.related_model._meta.db_table)} r{index} "
        f"ON r{index}.{quote(field.target_field.column)} = t.{quote(field.column)}"
        for index, field in enumerate(related)
    )
    conditions: list[str] = []
    params: list[Any] = []
    for attname, value in filters.items():
        field = _field_by_attname(model, attname)
        if isinstance(value, list | tuple):
            conditions.append(f"t.{quote(field.column)} IN ({', '.join(['%s'] * len(value))})")
            params.extend(field.get_db_prep_value(item, connection) for item in value)
        else:
            conditions.append(f"t.{quote(field.column)} = %s")
            params.append(field.get_db_prep_value(value, connection))
    sql = (
        f"SELECT {columns} FROM {quote(model._meta.db_table)} t {joins} "  # noqa: S608
        f"WHERE {' AND '.join(conditions)} {_row_lock_sql() if lock else ''}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
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
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET {assignments} WHERE {pk_column} = %s",  # noqa: S608
            [*params, instance.pk],
        )


def touch_row(model: type[Model], *, key_field: str, key: Any, field: str, value: Any) -> int:
    """``UPDATE <table> SET <field> = value WHERE <key_field> = key``: one indexed UPDATE, the
    benchmark's floor (``config.bench_urls``). Answers the rows updated."""
    quote = connection.ops.quote_name
    target = model._meta.get_field(field)
    where: Any = model._meta.get_field(key_field)
    table = quote(cast(str, model._meta.db_table))
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET {quote(target.column)} = %s "  # noqa: S608
            f"WHERE {quote(where.column)} = %s",
            [target.get_db_prep_save(value, connection), key],
        )
        return cursor.rowcount
