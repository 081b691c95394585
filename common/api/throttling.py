"""Request rate limits per bearer credential: one bucket per API key, one per gateway token.

A credential model names its bucket's scope in ``throttle_scope`` (``api_key``, ``gateway``);
the rates come from ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]`` under that scope (set from
``THROTTLE_API_KEY``/``THROTTLE_GATEWAY``). Requests that did not authenticate with a credential
(a session) are not limited here, and a key's bucket is the same whichever route the key calls.
Over the limit DRF answers 429 with ``Retry-After``.

Counts live in Django's default cache: per process with the default local-memory cache, shared
between processes when ``CACHES`` points at a shared backend.
"""

from typing import Any

from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle


class CredentialRateThrottle(SimpleRateThrottle):
    def allow_request(self, request, view) -> bool:
        self.scope = getattr(request.auth, "throttle_scope", None)
        # Read the rates on every request rather than once at import, so that a changed
        # setting (an override in tests, a reload) takes effect.
        rates: dict[str, Any] = api_settings.DEFAULT_THROTTLE_RATES
        self.rate = rates.get(self.scope) if self.scope else None
        if self.rate is None:
            return True
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def get_rate(self) -> str | None:
        return None  # chosen per request in allow_request, from the credential's scope

    def get_cache_key(self, request, view) -> str | None:
        credential = request.auth
        # The prefix keeps a new credential from inheriting the count of a deleted one whose
        # primary key the database handed out again (SQLite reuses the highest rowid).
        ident = f"{credential.pk}-{credential.prefix}"
        return self.cache_format % {"scope": self.scope, "ident": ident}
