"""The shared store: Redis through Django's own backend, failing soft.

Everything kept in the cache is worth keeping, never required: a dashboard strip can be
recounted, and a rate limit can let a request through. So when Redis is down, reads miss and
writes are dropped, with a warning at most every ``WARN_EVERY`` seconds per cache connection,
instead of failing the request; the outage also opens a short breaker (``RETRY_AFTER``) so
that each request does not wait out a connect timeout. ``incr`` is the exception: it raises
``StoreUnavailable`` so that the rate limiter can tell "no count" from "zero".
"""

import logging
import time

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.redis import RedisCache
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

WARN_EVERY = 30.0
RETRY_AFTER = 2.0


class StoreUnavailable(Exception):
    """The shared store did not answer."""


class OccasionalWarning:
    """A warning logged at most once every ``WARN_EVERY`` seconds: an outage is worth saying,
    not once per request."""

    def __init__(self, log: logging.Logger) -> None:
        self.log = log
        self._warned_at = -WARN_EVERY

    def warn(self, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY:
            self._warned_at = now
            self.log.warning(message, *args)


class FailSoftRedisCache(RedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._down_until = 0.0
        self._unavailable = OccasionalWarning(logger)

    def _call(self, method: str, *args):
        if time.monotonic() < self._down_until:
            raise StoreUnavailable("shared store is down (retrying shortly)")
        try:
            target = getattr(self, method) if method.startswith("_") else getattr(super(), method)
            return target(*args)
        except (RedisError, OSError) as exc:
            self._down_until = time.monotonic() + RETRY_AFTER
            self._unavailable.warn("shared store unavailable (%s): %s", method, type(exc).__name__)
            raise StoreUnavailable(str(type(exc).__name__)) from exc

    def _soft(self, method: str, default, *args):
        try:
            return self._call(method, *args)
        except StoreUnavailable:
            return default

    def get(self, key, default=None, version=None):
        return self._soft("get", default, key, default, version)

    def set(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        return self._soft("set", None, key, value, timeout, version)

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None):
        return self._soft("add", False, key, value, timeout, version)

    def delete(self, key, version=None):
        return self._soft("delete", False, key, version)

    def get_many(self, keys, version=None):
        return self._soft("get_many", {}, keys, version)

    def set_many(self, data, timeout=DEFAULT_TIMEOUT, version=None):
        return self._soft("set_many", list(data), data, timeout, version)

    def clear(self):
        return self._soft("clear", False)

    def incr(self, key, delta=1, version=None):
        return self._call("incr", key, delta, version)

    def count(self, key: str, *, timeout: int) -> int:
        """Add one to ``key`` (created at 1 with ``timeout`` seconds to live) and answer the new
        value: ``INCR`` and ``EXPIRE NX`` in one round trip, atomic however many processes
        count at once (Redis 7+)."""
        return self._call("_count", key, timeout)

    def _count(self, key: str, timeout: int) -> int:
        key = self.make_and_validate_key(key)
        pipe = self._cache.get_client(key, write=True).pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, timeout, nx=True)
        return pipe.execute()[0]
