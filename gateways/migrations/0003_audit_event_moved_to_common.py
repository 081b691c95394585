from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("gateways", "0002_audit_event_and_validators"),
        ("common", "0001_audit_event"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="AuditEvent")],
            database_operations=[],
        ),
    ]
