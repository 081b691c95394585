from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _restore_missing_roles(sender, **kwargs) -> None:
    """Make the role groups again if they are missing, as after a database flush (migration
    ``common.0002_roles`` makes them on a real install); groups that exist are left alone.

    Runs once per migrate or flush, after the last app's permissions are made."""
    from django.apps import apps
    from django.contrib.auth.models import Group, Permission

    if sender is not list(apps.get_app_configs())[-1]:
        return
    from common.roles import ROLE_PERMISSIONS

    existing = {
        f"{app}.{codename}": pk
        for pk, app, codename in Permission.objects.values_list(
            "pk", "content_type__app_label", "codename"
        )
    }
    if any(perm not in existing for perms in ROLE_PERMISSIONS.values() for perm in perms):
        # A database migrated only part of the way (some models, hence their permissions, do
        # not exist yet): the roles' own migrations make the groups when they run.
        return
    for role, perms in ROLE_PERMISSIONS.items():
        group, created = Group.objects.get_or_create(name=role.value)
        if created:
            group.permissions.set([existing[perm] for perm in perms])


class CommonConfig(AppConfig):
    """What every app uses: public ids, actors and the audit trail, domain errors, the API
    toolkit and the hot-path SQL helpers. It imports none of the other apps."""

    name = "common"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        post_migrate.connect(_restore_missing_roles, dispatch_uid="common.restore_missing_roles")
