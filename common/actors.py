"""Who is acting: a person (signed in, or through their API key), a gateway, or the system; and
how (the source). Every write service takes one, checks it may act, and records it in the audit
trail."""

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from functools import wraps
from typing import Any

from common.errors import PermissionDenied
from common.roles import roles_for


class Source(StrEnum):
    WEB = "web"
    API = "api"
    ADMIN = "admin"
    RUNNER = "runner"
    SYSTEM = "system"


@dataclass(frozen=True)
class Actor:
    source: Source
    # A user model instance: a person signed in, or the owner of the API key used.
    user: Any = None
    # A gateways.Gateway acting through its token (a runner).
    gateway: Any = None
    ip: str | None = None

    @classmethod
    def system(cls) -> "Actor":
        return cls(source=Source.SYSTEM)

    @classmethod
    def of_user(cls, user: Any, *, source: Source, ip: str | None = None) -> "Actor":
        # No user is not the system: a missing person must never act with the system's rights.
        if user is None:
            raise ValueError("Actor.of_user needs a user (Actor.system() is the system)")
        return cls(source=source, user=user, ip=ip)

    @classmethod
    def of_gateway(cls, gateway: Any, *, ip: str | None = None) -> "Actor":
        return cls(source=Source.RUNNER, gateway=gateway, ip=ip)

    @property
    def stored_user(self) -> Any:
        """The user to store beside a change (``created_by``, the audit record): the person
        acting, if they are a saved user; None for a gateway or the system."""
        return self.user if getattr(self.user, "pk", None) else None

    @property
    def is_system(self) -> bool:
        return self.user is None and self.gateway is None

    @property
    def label(self) -> str:
        if self.gateway is not None:
            return f"gateway:{self.gateway.name}"
        if self.user is not None:
            return str(self.user.get_username())
        return "system"

    def has_perm(self, perm: str) -> bool:
        """The system may do anything; a gateway holds no permission (it acts on its own runs
        through the gateway routes only); a person holds what their groups grant."""
        if self.is_system:
            return True
        if self.user is None:
            return False
        return bool(self.user.is_active and self.user.has_perm(perm))

    def require(self, perm: str, *, doing: str) -> None:
        """Raise PermissionDenied naming the role that ``doing`` needs, unless allowed."""
        if self.has_perm(perm):
            return
        roles = roles_for(perm)
        if self.gateway is not None:
            message = f"A gateway token cannot be used for {doing}."
        elif roles:
            message = f"{doing[0].upper()}{doing[1:]} needs the {' or '.join(roles)} role."
        else:
            message = f"{doing[0].upper()}{doing[1:]} needs the {perm} permission."
        raise PermissionDenied(message, role=roles[0] if roles else None)


def source_of_path(path: str) -> Source:
    if path.startswith("/admin/"):
        return Source.ADMIN
    if path.startswith("/api/agent/"):
        return Source.RUNNER
    if path.startswith("/api/"):
        return Source.API
    return Source.WEB


def actor_from_request(request: Any) -> Actor:
    """The actor behind a request (DRF's or Django's): a gateway principal, or the user."""
    ip = request.META.get("REMOTE_ADDR")
    user = request.user
    gateway = getattr(user, "gateway", None) if getattr(user, "is_gateway", False) else None
    if gateway is not None:
        return Actor.of_gateway(gateway, ip=ip)
    return Actor.of_user(user, source=source_of_path(request.path), ip=ip)


def page_requires(perm: str, *, doing: str) -> Callable:
    """Decorate a page view (after ``login_required``): a person without ``perm`` gets the 403
    page naming the role they would need."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapper(request: Any, *args: Any, **kwargs: Any) -> Any:
            actor_from_request(request).require(perm, doing=doing)
            return view(request, *args, **kwargs)

        return wrapper

    return decorator
