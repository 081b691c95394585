"""DRF authentication for the two bearer paths.

``/api/agent/...`` accepts only gateway tokens; ``/api/elt/...`` and the read API accept API keys
(or a session). A secret of the wrong kind is simply unknown on the other path: 401.
"""

from dataclasses import dataclass

from rest_framework import authentication, exceptions
from rest_framework.permissions import BasePermission

from gateways.models import Gateway, GatewayToken
from gateways.services import (
    api_key_authenticate,
    gateway_token_authenticate,
    gateway_token_authenticate_beside,
)


@dataclass(frozen=True)
class GatewayPrincipal:
    """``request.user`` for a gateway: authenticated, but not a person and holding no perms."""

    gateway: Gateway
    token: GatewayToken
    is_authenticated: bool = True
    is_anonymous: bool = False
    is_active: bool = True
    is_staff: bool = False
    is_superuser: bool = False
    is_gateway: bool = True
    pk = None
    id = None

    def has_perm(self, perm: str, obj=None) -> bool:
        return False

    def __str__(self) -> str:
        return f"gateway:{self.gateway.name}"


def _bearer(request) -> str | None:
    header = authentication.get_authorization_header(request)
    if not header:
        return None
    parts = header.split()
    if parts[0].lower() != b"bearer":
        return None
    if len(parts) != 2:
        raise exceptions.AuthenticationFailed(
            "Malformed Authorization header: use 'Bearer <token>'."
        )
    try:
        return parts[1].decode("ascii")
    except UnicodeDecodeError:
        raise exceptions.AuthenticationFailed("Malformed bearer token.") from None


def _client_ip(request) -> str | None:
    return request.META.get("REMOTE_ADDR")


class BearerAuthentication(authentication.BaseAuthentication):
    www_authenticate_realm = "api"
    # Nothing but the Authorization header: without one, the request is anonymous whatever
    # else it carries (``common.api.views.BearerOnlyApiView``).
    reads_only_authorization_header = True

    def authenticate_header(self, request) -> str:
        return f'Bearer realm="{self.www_authenticate_realm}"'


NOT_READ = object()


class GatewayTokenAuthentication(BearerAuthentication):
    """A gateway token. A view may name a row to read in the token's own statement
    (``credential_beside(request)`` returning a ``common.sql.Beside``, or None): the handler
    then finds it with ``row_read_beside(request)``."""

    www_authenticate_realm = "gateway"

    def authenticate(self, request):
        raw = _bearer(request)
        if raw is None:
            return None
        view = (getattr(request, "parser_context", None) or {}).get("view")
        beside = getattr(view, "credential_beside", None)
        spec = beside(request) if beside is not None else None
        if spec is None:
            token = gateway_token_authenticate(raw=raw, ip=_client_ip(request))
        else:
            token, request.row_beside_credential = gateway_token_authenticate_beside(
                raw=raw, beside=spec, ip=_client_ip(request)
            )
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked gateway token.")
        return GatewayPrincipal(gateway=token.gateway, token=token), token


def row_read_beside(request):
    """The row ``credential_beside`` named, read with the credential (None when there is no such
    row), or ``NOT_READ`` when none was read that way."""
    return request.__dict__.get("row_beside_credential", NOT_READ)


class ApiKeyAuthentication(BearerAuthentication):
    def authenticate(self, request):
        raw = _bearer(request)
        if raw is None:
            return None
        key = api_key_authenticate(raw=raw, ip=_client_ip(request))
        if key is None:
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked API key.")
        return key.user, key


class IsGateway(BasePermission):
    def has_permission(self, request, view) -> bool:
        return isinstance(request.user, GatewayPrincipal)


class IsPerson(BasePermission):
    """A signed-in user or an API key's user; never a gateway."""

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and not isinstance(user, GatewayPrincipal))
