"""Writes of the shared pieces: a person's role."""

from django.contrib.auth.models import Group, User
from django.db import transaction

from common.actors import Actor
from common.audit import AuditAction, audit_record
from common.errors import InvalidInput
from common.roles import Role


@transaction.atomic
def user_role_set(*, actor: Actor, user: User, role: str) -> None:
    """Make ``role`` the one role ``user`` holds: their other role groups are taken away, any
    other group is left."""
    actor.require("auth.change_user", doing="changing a person's role")
    if role not in Role.__members__.values():
        raise InvalidInput(
            errors={"role": [f"Unknown role {role!r}; use one of {', '.join(Role)}."]}
        )
    groups = {group.name: group for group in Group.objects.filter(name__in=list(Role))}
    if role not in groups:
        raise InvalidInput(errors={"role": [f"The {role} group is missing; run migrations."]})
    user.groups.remove(*[group for name, group in groups.items() if name != role])
    user.groups.add(groups[role])
    audit_record(actor=actor, action=AuditAction.USER_ROLE_SET, target=user, details={"role": role})
