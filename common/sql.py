"""Plain-SQL reads of one row and its to-one relations, for the few statements every runner
request makes.

The ORM compiles a query anew on every call; for a lookup joined to its relations that costs
several times what PostgreSQL takes to run it. These helpers build the same instances the ORM
would (every concrete column, converted by the same converters), from SQL written once.
"""

from typing import Any

from django.db import connection
from django.db.models import Model


def instance_from_row[M: Model](model: type[M], values: tuple | list) -> M:
    """A model instance from its concrete columns, in ``_meta.concrete_fields`` order."""
    converted = []
    for field, value in zip(model._meta.concrete_fields, values, strict=True):
        column = field.get_col(model._meta.db_table)
        for convert in connection.ops.get_db_converters(column) + column.get_db_converters(
            connection
        ):
            value = convert(value, column, connection)
        converted.append(value)
    return model.from_db(connection.alias, None, converted)


def select_joined(
    model: type[Model],
    relations: list[str],
    where: str,
    params: list[Any],
    *,
    suffix: str = "",
) -> Model | None:
    """One ``model`` row (alias ``t``) with the to-one ``relations`` it names (field names), as
    ``select_related`` would load them; the n-th relation is aliased ``r<n>``, joined LEFT OUTER
    when its foreign key is nullable. ``where`` and ``suffix`` (e.g. a row lock) are SQL over
    those aliases."""
    quote = connection.ops.quote_name
    related = [(field, field.null) for field in (model._meta.get_field(name) for name in relations)]
    tables = [("t", model)] + [
        (f"r{index}", field.related_model) for index, (field, _) in enumerate(related)
    ]
    columns = ", ".join(
        f"{alias}.{quote(field.column)}"
        for alias, table_model in tables
        for field in table_model._meta.concrete_fields
    )
    joins = " ".join(
        f"{'LEFT OUTER' if nullable else 'INNER'} JOIN "
        f"{quote(field.related_model._meta.db_table)} r{index} "
        f"ON r{index}.{quote(field.target_field.column)} = t.{quote(field.column)}"
        for index, (field, nullable) in enumerate(related)
    )
    sql = f"SELECT {columns} FROM {quote(model._meta.db_table)} t {joins} WHERE {where} {suffix}"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    start = len(model._meta.concrete_fields)
    instance = instance_from_row(model, row[:start])
    for field, _ in related:
        width = len(field.related_model._meta.concrete_fields)
        values = row[start : start + width]
        start += width
        target = None
        if getattr(instance, field.attname) is not None:
            target = instance_from_row(field.related_model, values)
        setattr(instance, field.name, target)
    return instance
