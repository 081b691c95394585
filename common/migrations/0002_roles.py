# The roles, as groups holding the permissions below. This is the table of common.roles as it
# stood when the roles were made; a later change of the roles is a new migration (a test compares
# the groups in the database with common.roles).

from django.contrib.auth.management import create_permissions
from django.db import migrations

READ = [
    ("runs", "view_run"),
    ("pipelines", "view_pipeline"),
    ("gateways", "view_gateway"),
    ("webhooks", "view_webhookendpoint"),
]
ROLES = {
    "viewer": READ,
    "runner": [("runs", "report_run"), ("runs", "trigger_run")],
    "operator": [*READ, ("runs", "trigger_run"), ("runs", "cancel_run")],
}


def make_roles(apps, schema_editor):
    # Permissions are made after migrations by a signal; make them now so the groups can hold
    # them on a fresh database.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, perms in ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.set(
            [
                Permission.objects.get(content_type__app_label=app, codename=codename)
                for app, codename in perms
            ]
        )


def remove_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=list(ROLES)).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("common", "0001_audit_event"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("runs", "0006_run_report_permission"),
        ("pipelines", "0001_initial"),
        ("gateways", "0003_audit_event_moved_to_common"),
        ("webhooks", "0002_encrypt_signing_secrets"),
    ]

    operations = [migrations.RunPython(make_roles, remove_roles)]
