"""Gateways and the bearer secrets that authenticate callers: gateway tokens and user API keys.

A secret is ``<prefix>_`` + 43 url-safe characters (32 random bytes). Only its SHA-256 hash is
stored; the plaintext is returned once, by the function that issues it.
"""

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from common.sql import select_joined
from gateways.models import ApiKey, Credential, Gateway, GatewayToken

GATEWAY_TOKEN_PREFIX = "gwt_"  # noqa: S105
API_KEY_PREFIX = "eltk_"
DISPLAY_PREFIX_CHARS = 12


def hash_secret(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


def _new_secret(prefix: str) -> tuple[str, str, str]:
    raw = prefix + secrets.token_urlsafe(32)
    return raw, raw[:DISPLAY_PREFIX_CHARS], hash_secret(raw)


def gateway_create(*, name: str, description: str = "") -> Gateway:
    return Gateway.objects.create(name=name, description=description)


def gateway_token_issue(
    *,
    gateway: Gateway,
    created_by: AbstractBaseUser | None = None,
    name: str = "",
    expires_at: datetime | None = None,
) -> tuple[GatewayToken, str]:
    raw, prefix, digest = _new_secret(GATEWAY_TOKEN_PREFIX)
    token = GatewayToken.objects.create(
        gateway=gateway,
        name=name,
        prefix=prefix,
        secret_hash=digest,
        created_by=created_by,
        expires_at=expires_at,
    )
    return token, raw


@transaction.atomic
def gateway_token_rotate(
    *,
    token: GatewayToken,
    created_by: AbstractBaseUser | None = None,
    overlap: timedelta = timedelta(0),
) -> tuple[GatewayToken, str]:
    """Issue a replacement for ``token`` and retire the old one after ``overlap``.

    A zero overlap revokes the old token now; otherwise it expires then (never later than it
    already would), so the gateway can switch to the new token without downtime.
    """
    new_token, raw = gateway_token_issue(
        gateway=token.gateway, created_by=created_by, name=token.name
    )
    if overlap <= timedelta(0):
        credential_revoke(credential=token)
    else:
        retire_at = timezone.now() + overlap
        if token.expires_at is None or token.expires_at > retire_at:
            token.expires_at = retire_at
            token.save(update_fields=["expires_at"])
    return new_token, raw


def api_key_issue(
    *,
    user: AbstractBaseUser,
    created_by: AbstractBaseUser | None = None,
    name: str = "",
    expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    raw, prefix, digest = _new_secret(API_KEY_PREFIX)
    key = ApiKey.objects.create(
        user=user,
        name=name,
        prefix=prefix,
        secret_hash=digest,
        created_by=created_by,
        expires_at=expires_at,
    )
    return key, raw


def credential_revoke(*, credential: Credential) -> bool:
    """Revoke at once: every lookup checks ``revoked_at``, so the very next request is refused.
    False when it was already revoked."""
    now = timezone.now()
    updated = (
        type(credential)
        .objects.filter(pk=credential.pk, revoked_at__isnull=True)
        .update(revoked_at=now)
    )
    if updated:
        credential.revoked_at = now
    return bool(updated)


def _lookup[T: Credential](model: type[T], raw: str, relation: str) -> T | None:
    digest = hash_secret(raw)
    # Every API request starts here, so it is plain SQL (see ``common.sql``).
    credential = select_joined(model, [relation], "t.secret_hash = %s", [digest])
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
    model = type(credential)
    due = Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - interval)
    with transaction.atomic():
        updated = model.objects.filter(due, pk=credential.pk).update(
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


def api_key_authenticate(*, raw: str, ip: str | None = None) -> ApiKey | None:
    key = _lookup(ApiKey, raw, "user")
    if key is None or not key.user.is_active:
        return None
    _record_use(key, ip)
    return key
