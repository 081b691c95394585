"""A trigram index on log messages for search across runs (PostgreSQL only; a no-op elsewhere).

``GET /api/logs?q=`` and the ``/logs/`` page match ``message ILIKE '%text%'``; a GIN index with
``gin_trgm_ops`` serves that for any text of three or more letters, so a rare word is found among
millions of kept lines without reading them. SQLite has no such index and scans.

The index is built ``CONCURRENTLY``: runners append log lines all the time, and a plain
``CREATE INDEX`` would hold a lock that blocks every insert into the table for the whole build.
A concurrent build that fails (a deadlock, a cancel) leaves an INVALID index behind, which
``IF NOT EXISTS`` would then take for done, so an invalid leftover is dropped first.
``pg_trgm`` is a trusted extension (PostgreSQL 13+): the database owner may create it.
"""

from django.db import migrations

INDEX = "logline_message_trgm"


def _partitioned(cursor) -> bool:
    """Migration 0013 made the table partitioned; an index on it cannot be built or dropped
    ``CONCURRENTLY`` (this only matters when migrating back below here and forward again)."""
    cursor.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_partitioned_table WHERE partrelid = 'runs_logline'::regclass)"
    )
    return bool(cursor.fetchone()[0])


def create_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        if _partitioned(cursor):
            schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
            schema_editor.execute(
                f"CREATE INDEX IF NOT EXISTS {INDEX} ON runs_logline USING gin (message gin_trgm_ops)"
            )
            return
        cursor.execute(
            "SELECT NOT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname = %s",
            [INDEX],
        )
        row = cursor.fetchone()
    if row and row[0]:
        schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}")
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    schema_editor.execute(
        f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {INDEX} "
        "ON runs_logline USING gin (message gin_trgm_ops)"
    )


def drop_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        concurrently = "" if _partitioned(cursor) else "CONCURRENTLY "
    schema_editor.execute(f"DROP INDEX {concurrently}IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    # CREATE INDEX CONCURRENTLY cannot run inside a transaction.
    atomic = False

    dependencies = [("runs", "0007_run_log_pruned")]

    operations = [migrations.RunPython(create_index, drop_index, elidable=False)]
