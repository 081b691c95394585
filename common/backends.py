"""Django's model authentication backend with each person's permissions read in one query.

``ModelBackend`` reads a user's own permissions and their groups' permissions in two queries,
once per user instance: for an API key every request loads a new instance, so every permission
check cost two round trips and two ORM compilations. Here both come from one prepared statement
(``common.sql.permission_names``), cached on the instance like ``ModelBackend`` caches them
(``_perm_cache``), so a change of role applies from the next request.
"""

from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.auth.backends import ModelBackend

from common.sql import permission_names


def keep_permissions(user_obj: Any, names: set[str]) -> None:
    """Give this user instance the permission names a statement already read (an API key's,
    ``common.sql.select_joined_with_permissions``): its checks then read nothing."""
    user_obj._perm_cache = names


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
        return permission_names(user_obj, everything=user_obj.is_superuser)
