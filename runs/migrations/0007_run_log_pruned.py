from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models
from django.db.migrations.operations import AddIndex


class AddIndexConcurrentlyOnPostgres(AddIndexConcurrently):
    """``CREATE INDEX CONCURRENTLY`` on PostgreSQL, so that runners keep reporting while the
    index builds over a large runs table; a plain index elsewhere."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)
        else:
            AddIndex.database_forwards(self, app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)
        else:
            AddIndex.database_backwards(self, app_label, schema_editor, from_state, to_state)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("runs", "0006_run_report_permission"),
    ]

    operations = [
        # Nullable, no default: adding it rewrites nothing, whatever the table's size.
        migrations.AddField(
            model_name="run",
            name="log_pruned_after_days",
            field=models.PositiveIntegerField(blank=True, editable=False, null=True),
        ),
        # Retention's candidates: finished runs whose log is still kept, oldest first.
        AddIndexConcurrentlyOnPostgres(
            model_name="run",
            index=models.Index(
                condition=models.Q(("finished_at__isnull", False), ("log_pruned_after_days__isnull", True)),
                fields=["finished_at"],
                name="run_log_kept_idx",
            ),
        ),
    ]
