"""Django's model authentication backend with each person's permissions read in one query.

``ModelBackend`` reads a user's own permissions and their groups' permissions in two queries,
once per user instance: for an API key every request loads a new instance, so every permission
check cost two round trips. Here both come from one query, cached on the instance like
``ModelBackend`` caches them (``_perm_cache``), so a change of role applies from the next request.
"""

from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Permission
from django.db.models import Q


class OneQueryModelBackend(ModelBackend):
    def get_all_permissions(self, user_obj: Any, obj: Any = None) -> set[str]:
        if not user_obj.is_active or user_obj.is_anonymous or obj is not None:
            return set()
        if not hasattr(user_obj, "_perm_cache"):
            user_obj._perm_cache = self._read_permissions(user_obj)
        return user_obj._perm_cache

    async def aget_all_permissions(self, user_obj: Any, obj: Any = None) -> set[str]:
        return await sync_to_async(self.get_all_permissions)(user_obj, obj)

    @staticmethod
    def _read_permissions(user_obj: Any) -> set[str]:
        names = ("content_type__app_label", "codename")
        if user_obj.is_superuser:
            rows = Permission.objects.order_by().values_list(*names)
        else:
            held = Q(user=user_obj) | Q(group__user=user_obj)
            rows = Permission.objects.filter(held).order_by().values_list(*names).distinct()
        return {f"{app_label}.{codename}" for app_label, codename in rows}
