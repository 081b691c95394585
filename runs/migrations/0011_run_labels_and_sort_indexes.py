"""PostgreSQL indexes for the label filter and the list's sort orders (a no-op elsewhere).

- ``run_labels_gin``: ``labels @> '{"team": "finance"}'`` (``label=team:finance``) is served by a
  GIN index with ``jsonb_path_ops`` (smaller and faster than the default opclass for ``@>``).
- One btree per non-default sort, in the order the list reads it (NULLs last, ties by id), so a
  page under any sort starts an index scan at its cursor instead of sorting every run:
  ``started_at``, the duration ``finished_at - started_at`` (an expression index: the list sorts
  on that same expression, so no stored column has to be kept in step), ``rows_loaded`` and
  ``bytes_loaded``. The default ``-createdAt`` is ``run_created_idx``.

Built ``CONCURRENTLY`` (runners keep writing while they build); an INVALID leftover of a failed
build is dropped first, since ``IF NOT EXISTS`` would take it for done. SQLite sorts without them.
"""

from django.db import migrations

INDEXES = {
    "run_labels_gin": "USING gin (labels jsonb_path_ops)",
    "run_started_sort_idx": "(started_at DESC NULLS LAST, id DESC)",
    "run_duration_desc_idx": "((finished_at - started_at) DESC NULLS LAST, id DESC)",
    "run_duration_asc_idx": "((finished_at - started_at) ASC NULLS LAST, id ASC)",
    "run_rows_sort_idx": "(rows_loaded DESC NULLS LAST, id DESC)",
    "run_bytes_sort_idx": "(bytes_loaded DESC NULLS LAST, id DESC)",
}


def create_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, definition in INDEXES.items():
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(
                "SELECT NOT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "WHERE c.relname = %s",
                [name],
            )
            row = cursor.fetchone()
        if row and row[0]:
            schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
        schema_editor.execute(
            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON runs_run {definition}"
        )


def drop_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in INDEXES:
        schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")


class Migration(migrations.Migration):
    # CREATE INDEX CONCURRENTLY cannot run inside a transaction.
    atomic = False

    dependencies = [("runs", "0010_run_labels")]

    operations = [migrations.RunPython(create_indexes, drop_indexes, elidable=False)]
