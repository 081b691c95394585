# The audit trail moves from gateways to common: the model's state is taken over here (its table
# stays, then takes this app's name); gateways 0003 drops its own state of it.

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ("gateways", "0002_audit_event_and_validators"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="AuditEvent",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("created_at", models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
                        ("actor_label", models.CharField(max_length=200)),
                        ("action", models.CharField(db_index=True, max_length=60)),
                        ("source", models.CharField(blank=True, help_text="web, api, admin, runner or system.", max_length=20)),
                        ("target_type", models.CharField(max_length=100)),
                        ("target_id", models.CharField(max_length=100)),
                        ("target_repr", models.CharField(max_length=200)),
                        ("details", models.JSONField(blank=True, default=dict)),
                        ("ip", models.GenericIPAddressField(blank=True, null=True)),
                        ("actor", models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="+", to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        "ordering": ["-created_at", "-id"],
                        "indexes": [models.Index(fields=["target_type", "target_id"], name="audit_target_idx")],
                        "db_table": "gateways_auditevent",
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.AlterModelTable(name="auditevent", table=None),
    ]
