"""Each telemetry sample keeps its JSON text, as the runner's full answer writes it, beside its
values (PostgreSQL only; SQLite leaves the column empty and builds answers in Python).

A trigger writes it when a row is stored, or its instant or values change, whatever stores it
(the runner PATCH, ``bulk_create``, a move between partitions). Only an UPDATE that sets the
column itself can change it otherwise. The text is what ``common.sql.rows_json`` writes for
``runs.selectors.run_samples_json``'s keys, pinned equal by ``tests/runs/test_hot_path.py``.

Adding a nullable column rewrites nothing, so rows stored before this migration keep NULL and
are written at read time, as before. The ALTER still needs the samples' tables to itself for a
moment, and while it waits for a transaction holding them, every sample write queues behind it:
it gives up after ``LOCK_TIMEOUT`` instead, and the migration can simply be run again.
"""

from django.db import migrations, models

FUNCTION = """
CREATE OR REPLACE FUNCTION runs_telemetrysample_json_text() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.json_text := '{"at":"' || to_char(NEW.at AT TIME ZONE 'UTC',
        CASE WHEN date_trunc('second', NEW.at) = NEW.at
        THEN 'YYYY-MM-DD"T"HH24:MI:SS"Z"' ELSE 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"' END) || '"'
        || CASE WHEN NEW."values" = '{}' THEN '}' ELSE ',' || substr(NEW."values"::text, 2) END;
    RETURN NEW;
END
$$
"""
LOCK_TIMEOUT = "5s"
# On the partitioned table, PostgreSQL gives every partition, present and future, the trigger.
TRIGGER = (
    'CREATE TRIGGER telemetrysample_json_text BEFORE INSERT OR UPDATE OF at, "values" '
    "ON runs_telemetrysample FOR EACH ROW EXECUTE FUNCTION runs_telemetrysample_json_text()"
)


def bound_the_lock_wait(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        # For the rest of the migration's transaction.
        schema_editor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")


def create_trigger(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(FUNCTION)
    schema_editor.execute(TRIGGER)


def drop_trigger(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("DROP TRIGGER IF EXISTS telemetrysample_json_text ON runs_telemetrysample")
    schema_editor.execute("DROP FUNCTION IF EXISTS runs_telemetrysample_json_text()")


class Migration(migrations.Migration):
    dependencies = [("runs", "0014_pipeline_day")]

    operations = [
        migrations.RunPython(bound_the_lock_wait, migrations.RunPython.noop, elidable=False),
        migrations.AddField(
            model_name="telemetrysample",
            name="json_text",
            field=models.TextField(editable=False, null=True),
        ),
        migrations.RunPython(create_trigger, drop_trigger, elidable=False),
    ]
