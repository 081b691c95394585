"""One HTTP attempt: POST the signed bytes to the checked address and describe what happened.

Redirects are never followed (a 3xx is a failed attempt), proxies from the environment are
ignored (they would bypass the address check), and at most the first KiB of the answer is read.
"""

import email.utils
import logging
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from django.conf import settings
from django.utils import timezone

from webhooks import ssrf

logger = logging.getLogger(__name__)

RESPONSE_EXCERPT_BYTES = 1024
USER_AGENT = "elt-control-plane-webhooks/1.0"


@dataclass(frozen=True)
class AttemptResult:
    attempted_at: datetime
    status_code: int | None = None
    latency_ms: int = 0
    response_body: str = ""
    error: str = ""
    retry_after_seconds: float | None = None

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def parse_retry_after(value: str | None, *, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def _read_excerpt(response: httpx.Response, *, deadline: float) -> str:
    """The first KiB of the body; a receiver dripping bytes is cut off at the deadline."""
    chunks = bytearray()
    for chunk in response.iter_raw():
        chunks.extend(chunk)
        if len(chunks) >= RESPONSE_EXCERPT_BYTES or time.monotonic() > deadline:
            break
    return bytes(chunks[:RESPONSE_EXCERPT_BYTES]).decode("utf-8", errors="replace")


def _send(
    client: httpx.Client, target: ssrf.Target, *, deadline: float, **request
) -> tuple[int, str, float | None]:
    """POST to each checked address in turn until one accepts the connection."""
    for index, address in enumerate(target.addresses):
        try:
            with client.stream("POST", target.url_for(address), **request) as response:
                excerpt = _read_excerpt(response, deadline=deadline)
                retry_after = None
                if response.status_code in (429, 503):
                    retry_after = parse_retry_after(
                        response.headers.get("retry-after"), now=timezone.now()
                    )
                return response.status_code, excerpt, retry_after
        except httpx.ConnectError:
            if index == len(target.addresses) - 1:
                raise
    raise AssertionError("a target always has an address")


def post(*, url: str, body: bytes, headers: dict[str, str]) -> AttemptResult:
    attempted_at = timezone.now()
    started = time.monotonic()

    def elapsed_ms() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        target = ssrf.resolve_target(url, allow_private=settings.WEBHOOK_ALLOW_PRIVATE_URLS)
    except ssrf.UnsafeUrl as exc:
        return AttemptResult(attempted_at=attempted_at, error=f"Refused: {exc}")

    request_headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "host": target.host_header,
        **headers,
    }
    extensions = {"sni_hostname": target.hostname} if target.scheme == "https" else {}
    timeout = httpx.Timeout(settings.WEBHOOK_TIMEOUT_SECONDS)
    verify: ssl.SSLContext | bool = True
    if settings.WEBHOOK_CA_BUNDLE:
        verify = ssl.create_default_context(cafile=settings.WEBHOOK_CA_BUNDLE)
    try:
        with httpx.Client(
            timeout=timeout, follow_redirects=False, trust_env=False, verify=verify
        ) as client:
            status_code, excerpt, retry_after = _send(
                client,
                target,
                content=body,
                headers=request_headers,
                extensions=extensions,
                deadline=started + settings.WEBHOOK_TIMEOUT_SECONDS,
            )
    except httpx.TimeoutException:
        return AttemptResult(
            attempted_at=attempted_at,
            latency_ms=elapsed_ms(),
            error=f"Timed out after {settings.WEBHOOK_TIMEOUT_SECONDS:g} s.",
        )
    except httpx.HTTPError as exc:
        reason = str(exc) or type(exc).__name__
        return AttemptResult(
            attempted_at=attempted_at,
            latency_ms=elapsed_ms(),
            error=f"{type(exc).__name__}: {reason}"[:500],
        )
    except Exception as exc:
        # Anything else (an invalid URL httpx refuses, a TLS library error...) is still a failed
        # attempt to record and retry, never a crashed task that leaves the lease to expire.
        logger.warning("webhook attempt failed unexpectedly: %s", type(exc).__name__)
        return AttemptResult(
            attempted_at=attempted_at,
            latency_ms=elapsed_ms(),
            error=f"Unexpected error: {type(exc).__name__}.",
        )
    error = ""
    if 300 <= status_code < 400:
        error = "Redirects are not followed."
    elif not 200 <= status_code < 300:
        error = f"HTTP {status_code}."
    return AttemptResult(
        attempted_at=attempted_at,
        status_code=status_code,
        latency_ms=elapsed_ms(),
        response_body=excerpt,
        error=error,
        retry_after_seconds=retry_after,
    )
