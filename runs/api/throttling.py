"""Request rate limits per bearer credential: one bucket per API key, one per gateway token.

Rates come from ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]`` (scopes ``api_key`` and
``gateway``, set from ``THROTTLE_API_KEY``/``THROTTLE_GATEWAY``). Both classes are installed as
the default throttles and each ignores requests that did not authenticate with its kind of
credential, so a session user is never limited by an API key's bucket, and a key's bucket is the
same whichever route the key calls. Over the limit DRF answers 429 with ``Retry-After``.

Counts live in Django's default cache: per process with the default local-memory cache, shared
between processes when ``CACHES`` points at a shared backend.
"""

from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from gateways.models import ApiKey, GatewayToken


class CredentialRateThrottle(SimpleRateThrottle):
    credential_model: type

    def get_rate(self) -> str | None:
        # Read the rates on every request rather than once at import, so that a changed
        # setting (an override in tests, a reload) takes effect.
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def allow_request(self, request, view) -> bool:
        self.rate = self.get_rate()
        if self.rate is None:
            return True
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def get_cache_key(self, request, view) -> str | None:
        credential = request.auth
        if not isinstance(credential, self.credential_model):
            return None
        # The prefix keeps a new credential from inheriting the count of a deleted one whose
        # primary key the database handed out again (SQLite reuses the highest rowid).
        ident = f"{credential.pk}-{credential.prefix}"
        return self.cache_format % {"scope": self.scope, "ident": ident}


class ApiKeyRateThrottle(CredentialRateThrottle):
    scope = "api_key"
    credential_model = ApiKey


class GatewayTokenRateThrottle(CredentialRateThrottle):
    scope = "gateway"
    credential_model = GatewayToken
