"""Log lines and telemetry samples in tables partitioned by range of run id (PostgreSQL only;
SQLite keeps plain tables). See ``runs.partitions``.

The model does not change: the tables keep their columns and the unique ``(run_id, seq)``
constraint (which holds the partition key, so it stays enforced). ``id`` keeps its values from
a sequence but is no longer a primary key (a partitioned table's primary key must hold the
partition key); nothing looks a line up by it.

They lose the database's foreign key to the run. With it, creating, detaching or dropping a
range takes a lock on ``runs_run`` itself, which every runner's PATCH holds a row lock in, while
holding the log tables: measured, that deadlocked with a runner's append. Every write of a line
goes through its run's row lock (``runs.services``), and deleting a run deletes its lines
(Django's cascade), so no line outlives its run.

The existing rows are copied in this migration's transaction, into one range per day of runs
(the clock creates the following ones): on a large database this holds the tables for the
copy's duration (docs/SCALING.md, "Partitioned log and sample tables", says how long).
"""

from django.db import migrations

# (table, columns after id, unique constraint, extra index)
TABLES = [
    (
        "runs_logline",
        "seq bigint NOT NULL, at timestamp with time zone NOT NULL, "
        "level varchar(5) NOT NULL, message text NOT NULL, node_id varchar(200) NOT NULL, "
        "run_id bigint NOT NULL",
        "logline_run_seq",
        "CREATE INDEX logline_message_trgm ON runs_logline USING gin (message gin_trgm_ops)",
    ),
    (
        "runs_telemetrysample",
        'seq bigint NOT NULL, at timestamp with time zone NOT NULL, "values" jsonb NOT NULL, '
        "run_id bigint NOT NULL",
        "sample_run_seq",
        None,
    ),
]


def partition(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    from runs import partitions

    if partitions.partitioned():
        return
    with connection.cursor() as cursor:
        for table, columns, _, _ in TABLES:
            old = f"{table}_unpartitioned"
            cursor.execute(f"ALTER TABLE {table} RENAME TO {old}")
            cursor.execute(
                "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "WHERE i.indrelid = %s::regclass",
                [old],
            )
            for (name,) in cursor.fetchall():
                cursor.execute(f"ALTER INDEX {name} RENAME TO {name[:50]}_unpart")
            cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [old])
            cursor.execute(f"ALTER SEQUENCE {cursor.fetchone()[0]} RENAME TO {old}_id_seq")
            cursor.execute(f"SELECT coalesce(max(id), 0) + 1 FROM {old}")  # noqa: S608
            start = cursor.fetchone()[0]
            cursor.execute(f"CREATE SEQUENCE {table}_id_seq START {start}")
            cursor.execute(
                f"CREATE TABLE {table} (id bigint NOT NULL DEFAULT nextval('{table}_id_seq'), "
                f"{columns}) PARTITION BY RANGE (run_id)"
            )
            cursor.execute(f"ALTER SEQUENCE {table}_id_seq OWNED BY {table}.id")
            cursor.execute(f"CREATE TABLE {table}_default PARTITION OF {table} DEFAULT")
        partitions.create_by_day()
        for table, _, unique, index in TABLES:
            old = f"{table}_unpartitioned"
            names = ", ".join(connection.ops.quote_name(c) for c in partitions.columns(table))
            cursor.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM {old}")  # noqa: S608
            cursor.execute(f"DROP TABLE {old}")
            # The indexes after the copy: built in one pass, not grown row by row.
            cursor.execute(f"ALTER TABLE {table} ADD CONSTRAINT {unique} UNIQUE (run_id, seq)")
            if index:
                cursor.execute(index)
            cursor.execute(f"ANALYZE {table}")


class Migration(migrations.Migration):
    dependencies = [("runs", "0012_saved_view_bulk_job")]

    # The model's state is unchanged, and a partitioned table serves it as the plain one did:
    # going back leaves the tables as they are.
    operations = [
        migrations.RunPython(partition, migrations.RunPython.noop, elidable=False),
    ]
