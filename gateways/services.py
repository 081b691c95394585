"""Gateways and the bearer secrets that authenticate callers: gateway tokens and user API keys.

A secret is ``<prefix>_`` + 43 url-safe characters (32 random bytes). Only its SHA-256 hash is
stored; the plaintext is returned once, by the function that issues it.
"""

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Model, Q
from django.utils import timezone

from common.actors import Actor
from common.audit import AuditAction, audit_record
from common.backends import keep_permissions
from common.roles import Perm
from common.sql import (
    Beside,
    select_joined,
    select_joined_beside,
    select_joined_with_permissions,
)
from gateways.models import ApiKey, Credential, Gateway, GatewayToken

GATEWAY_TOKEN_PREFIX = "gwt_"  # noqa: S105
API_KEY_PREFIX = "eltk_"
DISPLAY_PREFIX_CHARS = 12


def hash_secret(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


def _new_secret(prefix: str) -> tuple[str, str, str]:
    raw = prefix + secrets.token_urlsafe(32)
    return raw, raw[:DISPLAY_PREFIX_CHARS], hash_secret(raw)


@transaction.atomic
def gateway_create(*, actor: Actor, name: str, description: str = "") -> Gateway:
    actor.require(Perm.ADD_GATEWAYS, doing="creating a gateway")
    gateway = Gateway.objects.create(name=name, description=description)
    audit_record(actor=actor, action=AuditAction.GATEWAY_CREATED, target=gateway)
    return gateway


@transaction.atomic
def gateway_token_issue(
    *,
    actor: Actor,
    gateway: Gateway,
    name: str = "",
    expires_at: datetime | None = None,
) -> tuple[GatewayToken, str]:
    actor.require(Perm.ISSUE_GATEWAY_TOKENS, doing="issuing a gateway token")
    raw, prefix, digest = _new_secret(GATEWAY_TOKEN_PREFIX)
    token = GatewayToken.objects.create(
        gateway=gateway,
        name=name,
        prefix=prefix,
        secret_hash=digest,
        created_by=actor.stored_user,
        expires_at=expires_at,
    )
    audit_record(
        actor=actor,
        action=AuditAction.GATEWAY_TOKEN_ISSUED,
        target=token,
        details={"prefix": token.prefix, "name": token.name},
    )
    return token, raw


@transaction.atomic
def gateway_token_rotate(
    *,
    actor: Actor,
    token: GatewayToken,
    overlap: timedelta = timedelta(0),
) -> tuple[GatewayToken, str]:
    """Issue a replacement for ``token`` and retire the old one after ``overlap``.

    A zero overlap revokes the old token now; otherwise it expires then (never later than it
    already would), so the gateway can switch to the new token without downtime.
    """
    actor.require(Perm.REVOKE_GATEWAY_TOKENS, doing="rotating a gateway token")
    new_token, raw = gateway_token_issue(actor=actor, gateway=token.gateway, name=token.name)
    if overlap <= timedelta(0):
        _revoke(token)
    else:
        retire_at = timezone.now() + overlap
        if token.expires_at is None or token.expires_at > retire_at:
            token.expires_at = retire_at
            token.save(update_fields=["expires_at"])
    audit_record(
        actor=actor,
        action=AuditAction.GATEWAY_TOKEN_ROTATED,
        target=token,
        details={
            "prefix": token.prefix,
            "replacement": new_token.prefix,
            "overlapSeconds": int(overlap.total_seconds()),
        },
    )
    return new_token, raw


@transaction.atomic
def api_key_issue(
    *,
    actor: Actor,
    user: User,
    name: str = "",
    expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    actor.require(Perm.ISSUE_API_KEYS, doing="issuing an API key")
    raw, prefix, digest = _new_secret(API_KEY_PREFIX)
    key = ApiKey.objects.create(
        user=user,
        name=name,
        prefix=prefix,
        secret_hash=digest,
        created_by=actor.stored_user,
        expires_at=expires_at,
    )
    audit_record(
        actor=actor,
        action=AuditAction.API_KEY_ISSUED,
        target=key,
        details={"prefix": key.prefix, "name": key.name},
    )
    return key, raw


def _revoke(credential: GatewayToken | ApiKey) -> bool:
    now = timezone.now()
    model: type[GatewayToken] | type[ApiKey] = type(credential)
    updated = model._default_manager.filter(pk=credential.pk, revoked_at__isnull=True).update(
        revoked_at=now
    )
    if updated:
        credential.revoked_at = now
    return bool(updated)


@transaction.atomic
def credential_revoke(*, actor: Actor, credential: GatewayToken | ApiKey) -> bool:
    """Revoke at once: every lookup checks ``revoked_at``, so the very next request is refused.
    False when it was already revoked (and nothing is recorded)."""
    is_token = isinstance(credential, GatewayToken)
    actor.require(
        Perm.REVOKE_GATEWAY_TOKENS if is_token else Perm.REVOKE_API_KEYS,
        doing="revoking a gateway token" if is_token else "revoking an API key",
    )
    revoked = _revoke(credential)
    if revoked:
        audit_record(
            actor=actor,
            action=AuditAction.GATEWAY_TOKEN_REVOKED if is_token else AuditAction.API_KEY_REVOKED,
            target=credential,
            details={"prefix": credential.prefix},
        )
    return revoked


def _lookup[T: Credential](model: type[T], raw: str, relation: str) -> T | None:
    digest = hash_secret(raw)
    # Every API request starts here, so it is plain SQL (see ``common.sql``).
    credential = select_joined(model, [relation], filters={"secret_hash": digest})
    return _accepted(credential, digest)


def _lookup_person_key(raw: str) -> ApiKey | None:
    """An API key, its person, and the person's permissions, in one statement."""
    digest = hash_secret(raw)
    key, names = select_joined_with_permissions(ApiKey, "user", filters={"secret_hash": digest})
    key = _accepted(key, digest)
    if key is not None and names is not None:
        keep_permissions(key.user, names)
    return key


def _accepted[T: Credential](credential: T | None, digest: str) -> T | None:
    if credential is None or not hmac.compare_digest(credential.secret_hash, digest):
        return None
    if not credential.is_live():
        return None
    return credential


def _record_use(credential: Credential, ip: str | None) -> None:
    """Note the last use, writing at most once per interval per credential."""
    now = timezone.now()
    interval = timedelta(seconds=settings.GATEWAY_LAST_SEEN_WRITE_INTERVAL_SECONDS)
    if credential.last_used_at is not None and now - credential.last_used_at < interval:
        return
    model: type[GatewayToken] | type[ApiKey] = type(credential)  # type: ignore[assignment]
    due = Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - interval)
    with transaction.atomic():
        updated = model._default_manager.filter(due, pk=credential.pk).update(
            last_used_at=now, last_used_ip=ip
        )
        if updated and isinstance(credential, GatewayToken):
            Gateway.objects.filter(pk=credential.gateway_id).update(
                last_seen_at=now, last_seen_ip=ip
            )
    credential.last_used_at = now


def gateway_token_authenticate(*, raw: str, ip: str | None = None) -> GatewayToken | None:
    token = _lookup(GatewayToken, raw, "gateway")
    if token is not None:
        _record_use(token, ip)
    return token


def gateway_token_authenticate_beside[N: Model](
    *, raw: str, beside: Beside[N], ip: str | None = None
) -> tuple[GatewayToken | None, N | None]:
    """``gateway_token_authenticate``, and in the same statement the ``beside`` row keyed by the
    token's columns (the run a runner's request names, say); that row only with a live token."""
    digest = hash_secret(raw)
    token, row = select_joined_beside(
        GatewayToken, ["gateway"], filters={"secret_hash": digest}, beside=beside
    )
    token = _accepted(token, digest)
    if token is None:
        return None, None
    _record_use(token, ip)
    return token, row


def api_key_authenticate(*, raw: str, ip: str | None = None) -> ApiKey | None:
    key = _lookup_person_key(raw)
    if key is None or not key.user.is_active:
        return None
    _record_use(key, ip)
    return key
