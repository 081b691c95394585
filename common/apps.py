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

    for role, perms in ROLE_PERMISSIONS.items():
        group, created = Group.objects.get_or_create(name=role.value)
        if created:
            wanted = [perm.split(".", 1) for perm in perms]
            group.permissions.set(
                [
                    Permission.objects.get(content_type__app_label=app, codename=codename)
                    for app, codename in wanted
                ]
            )


class CommonConfig(AppConfig):
    """What every app uses: public ids, actors and the audit trail, domain errors, the API
    toolkit and the hot-path SQL helpers. It imports none of the other apps."""

    name = "common"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        post_migrate.connect(_restore_missing_roles, dispatch_uid="common.restore_missing_roles")
