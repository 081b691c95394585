"""A person's preferences for the pages: the time zone times are shown in, and the Runs page
view they opened last.

``user_time_zone`` is the read (blank: the browser's own zone), ``user_preference_set`` the one
write. Pages read the zone through the ``viewer`` context processor, lazily, so fragments and
polls that never show a zone never query it.
"""

import zoneinfo
from functools import cache
from typing import cast

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from django.utils.functional import SimpleLazyObject

from common.actors import Actor
from common.audit import AuditAction, audit_record
from common.errors import InvalidInput, PermissionDenied
from common.models import UserPreference

BROWSER_ZONE = ""


@cache
def time_zone_names() -> tuple[str, ...]:
    """Every IANA zone this machine knows, UTC first."""
    names = sorted(zoneinfo.available_timezones() - {"UTC", "localtime", "Factory"})
    return ("UTC", *names)


def user_time_zone(*, user: AbstractBaseUser | AnonymousUser) -> str:
    """The zone ``user`` pinned, or ``BROWSER_ZONE`` when they did not (or are signed out)."""
    if not getattr(user, "is_authenticated", False):
        return BROWSER_ZONE
    zone = (
        UserPreference.objects.filter(user_id=cast(int, user.pk))
        .values_list("time_zone", flat=True)
        .first()
    )
    return zone or BROWSER_ZONE


def user_preference_set(*, actor: Actor, time_zone: str) -> UserPreference:
    """Pin ``time_zone`` (an IANA name) for the person acting, or ``""`` to follow the
    browser."""
    user = actor.user
    if user is None or not getattr(user, "pk", None):
        raise PermissionDenied("Only a signed-in person has preferences.")
    time_zone = time_zone.strip()
    if time_zone and time_zone not in time_zone_names():
        raise InvalidInput(
            f"Unknown time zone {time_zone[:64]!r}; use an IANA name such as UTC or "
            "Europe/Berlin, or leave it empty for the browser's zone.",
            field="timeZone",
        )
    with transaction.atomic():
        preference, _ = UserPreference.objects.select_for_update().get_or_create(user=user)
        preference.time_zone = time_zone
        preference.updated_at = timezone.now()
        preference.save(update_fields=["time_zone", "updated_at"])
        audit_record(
            actor=actor,
            action=AuditAction.USER_PREFERENCE_SET,
            target=user,
            details={"timeZone": time_zone},
        )
    return preference


def user_last_view(*, user: AbstractBaseUser | AnonymousUser) -> str:
    """The id of the Runs page view ``user`` opened last, or ``""``."""
    if not getattr(user, "is_authenticated", False):
        return ""
    return (
        UserPreference.objects.filter(user_id=cast(int, user.pk))
        .values_list("last_view", flat=True)
        .first()
    ) or ""


def user_last_view_set(*, actor: Actor, view_id: str) -> None:
    """Remember the view the person opened (``""``: none). The caller checked that they may see
    it. Not audited: it is where the page opens, like a scroll position, not a change to
    anything shared."""
    user = actor.stored_user
    if user is None:
        return
    with transaction.atomic():
        updated = UserPreference.objects.filter(user=user).update(
            last_view=view_id, updated_at=timezone.now()
        )
        if not updated:
            UserPreference.objects.get_or_create(user=user, defaults={"last_view": view_id})


def viewer(request: HttpRequest) -> dict[str, SimpleLazyObject]:
    """Context processor: ``viewer_time_zone``, read only if a template uses it."""
    return {
        "viewer_time_zone": SimpleLazyObject(
            lambda: user_time_zone(user=getattr(request, "user", AnonymousUser()))
        )
    }
