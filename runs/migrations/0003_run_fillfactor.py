"""Leave room in every page of runs_run for updated versions of its rows (PostgreSQL only).

A running run is rewritten on every runner PATCH (log_seq, telemetry, last_report_at). When the
new version fits on the same page and no indexed column changed, PostgreSQL makes it a HOT
update: no new entries in the run table's eight indexes and a fraction of the WAL. With the
default fillfactor of 100, runs created together fill their pages completely and every report is
a full update of every index. Only pages written after this migration are affected.
"""

from django.db import migrations

FILLFACTOR = 80


def set_fillfactor(apps, schema_editor, value: int | None = FILLFACTOR):
    if schema_editor.connection.vendor != "postgresql":
        return
    table = schema_editor.quote_name("runs_run")
    if value is None:
        schema_editor.execute(f"ALTER TABLE {table} RESET (fillfactor)")
    else:
        schema_editor.execute(f"ALTER TABLE {table} SET (fillfactor = {int(value)})")


def reset_fillfactor(apps, schema_editor):
    set_fillfactor(apps, schema_editor, None)


class Migration(migrations.Migration):
    dependencies = [("runs", "0002_patch_receipt")]

    operations = [migrations.RunPython(set_fillfactor, reset_fillfactor, elidable=False)]
