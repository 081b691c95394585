# The operator role runs bulk actions and shares saved views (issue 14): two permissions the
# runs app's migration 0010 made, added to the operator group.

from django.contrib.auth.management import create_permissions
from django.db import migrations

ADDED = [("runs", "bulk_run"), ("runs", "share_savedview")]


def grant(apps, schema_editor):
    # Permissions are made after migrations by a signal; make them now on a fresh database.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    operator, _ = Group.objects.get_or_create(name="operator")
    operator.permissions.add(
        *[
            Permission.objects.get(content_type__app_label=app, codename=codename)
            for app, codename in ADDED
        ]
    )


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for group in Group.objects.filter(name="operator"):
        group.permissions.remove(
            *Permission.objects.filter(
                content_type__app_label="runs", codename__in=[code for _, code in ADDED]
            )
        )


class Migration(migrations.Migration):

    dependencies = [
        ("common", "0004_user_preference_last_view"),
        ("runs", "0012_saved_view_bulk_job"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
