"""Each telemetry sample keeps its JSON text, as the runner's full answer writes it, beside its
values (PostgreSQL only; SQLite leaves the column empty and builds answers in Python).

A trigger writes it when a row is stored, or its instant or values change, whatever stores it
(the runner PATCH, ``bulk_create``, a move between partitions), so no writer can leave it stale.
The text is what ``common.sql.rows_json`` writes for a sample, pinned equal by
``tests/runs/test_hot_path.py``. Adding a nullable column rewrites nothing, so rows stored
before this migration keep NULL and are written at read time, as before.
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
# On the partitioned table, PostgreSQL gives every partition, present and future, the trigger.
TRIGGER = (
    'CREATE TRIGGER telemetrysample_json_text BEFORE INSERT OR UPDATE OF at, "values" '
    "ON runs_telemetrysample FOR EACH ROW EXECUTE FUNCTION runs_telemetrysample_json_text()"
)


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
        migrations.AddField(
            model_name="telemetrysample",
            name="json_text",
            field=models.TextField(editable=False, null=True),
        ),
        migrations.RunPython(create_trigger, drop_trigger, elidable=False),
    ]
