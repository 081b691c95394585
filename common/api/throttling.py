"""Request rate limits per bearer credential: one bucket per API key, one per gateway token.

A credential model names its bucket's scope in ``throttle_scope`` (``api_key``, ``gateway``);
the rates come from ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]`` under that scope (set from
``THROTTLE_API_KEY``/``THROTTLE_GATEWAY``). Requests that did not authenticate with a credential
(a session) are not limited here, and a key's bucket is the same whichever route the key calls.
Over the limit the answer is 429 with ``Retry-After`` (the seconds left in the window).

The count is a fixed-window counter: one atomic increment of one integer per request, whatever
the limit (DRF's default keeps, pickles and rewrites the list of every request time in the
window). It is shared by every process that uses the same store (``THROTTLE_STORE``):

- ``cache``: Django's default cache, i.e. Redis when ``REDIS_URL`` is set (``INCR`` is atomic),
  shared by every machine;
- ``file``: one small file per credential under ``SHARED_STATE_DIR``, incremented under an
  exclusive ``flock``: shared by every process on one machine (several machines each count
  their own share).

A window lets through at most the limit, so two adjacent windows can pass up to twice the
limit within one window's length around their boundary. If the store does not answer, the
request passes and a warning is logged: a rate limit is protection, not a dependency.
"""

import fcntl
import hashlib
import logging
import os
import time
from pathlib import Path
from typing import Any, cast

from django.conf import settings
from django.core.cache import cache
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle

from common.cache import OccasionalWarning, StoreUnavailable

logger = logging.getLogger(__name__)
_store_down = OccasionalWarning(logger)


def _count_in_cache(key: str, window: int, duration: int) -> int:
    bucket = f"throttle:{key}:{window}"
    if hasattr(cache, "count"):  # Redis: INCR and EXPIRE NX in one round trip
        return cache.count(bucket, timeout=duration + 1)
    # Any other backend with an atomic incr (memcached, local memory).
    cache.add(bucket, 0, timeout=duration + 1)
    try:
        return cache.incr(bucket)
    except ValueError:  # expired between the two calls: this request opens a new window
        cache.add(bucket, 0, timeout=duration + 1)
        return cache.incr(bucket)


_RECORD = 40  # "<window> <count>", fixed width so a rewrite never needs a truncate


def _count_in_file(key: str, window: int) -> int:
    directory = Path(settings.SHARED_STATE_DIR) / "throttle"
    name = hashlib.sha256(key.encode()).hexdigest()[:32]
    try:
        fd = os.open(directory / name, os.O_RDWR | os.O_CREAT, 0o600)
    except FileNotFoundError:
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(directory / name, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        stored_window, _, stored_count = os.pread(fd, _RECORD, 0).decode().partition(" ")
        count = int(stored_count) + 1 if stored_window == str(window) else 1
        os.pwrite(fd, f"{window} {count}".ljust(_RECORD).encode(), 0)
        return count
    finally:
        os.close(fd)  # releases the lock


def count_request(key: str, *, duration: int, now: float | None = None) -> tuple[int, float]:
    """Count one request against ``key``; answers the count so far in the current window and
    the seconds until that window ends. Raises ``StoreUnavailable`` if the store is down."""
    now = time.time() if now is None else now
    window = int(now // duration)
    remaining = (window + 1) * duration - now
    if settings.THROTTLE_STORE == "file":
        try:
            return _count_in_file(key, window), remaining
        except OSError as exc:
            raise StoreUnavailable(str(exc)) from exc
    return _count_in_cache(key, window, duration), remaining


class CredentialRateThrottle(BaseThrottle):
    def allow_request(self, request, view) -> bool:
        scope: str | None = getattr(request.auth, "throttle_scope", None)
        # Read the rates on every request rather than once at import, so that a changed
        # setting (an override in tests, a reload) takes effect.
        rates: dict[str, Any] = api_settings.DEFAULT_THROTTLE_RATES
        rate = rates.get(scope) if scope else None
        if scope is None or rate is None:
            return True
        limit, duration = _parse_rate(rate)
        try:
            count, self.remaining = count_request(
                throttle_key(scope, request.auth), duration=duration
            )
        except StoreUnavailable as exc:
            _store_down.warn("rate limits not enforced: the shared store is unavailable (%s)", exc)
            return True
        return count <= limit

    def wait(self) -> float:
        return self.remaining


def throttle_key(scope: str, credential: Any) -> str:
    """The bucket of one credential. The prefix keeps a new credential from inheriting the
    count of a deleted one whose primary key the database handed out again (SQLite reuses the
    highest rowid)."""
    return f"{scope}:{credential.pk}-{credential.prefix}"


def _parse_rate(rate: str) -> tuple[int, int]:
    """``"6000/min"`` as (requests, seconds), as DRF reads its rates."""
    limit, duration = SimpleRateThrottle.parse_rate(cast(Any, None), rate)
    assert limit is not None and duration is not None
    return limit, duration
