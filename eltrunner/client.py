"""A client for the runner API (``/api/agent/runs``), on httpx, without Django.

Every PATCH carries an ``Idempotency-Key`` and ``Prefer: return=minimal``; a request that times
out, cannot connect, or is answered 429/5xx is retried with exponential backoff (honouring
``Retry-After``) under the same key, so the server applies it exactly once.
"""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from eltrunner import __version__

logger = logging.getLogger("eltrunner")

RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})


class RunnerError(Exception):
    """A refusal the server will not change its mind about (no retry helps)."""

    def __init__(self, message: str, *, status_code: int | None = None, body: Any = None):
        super().__init__(message)
        self.status_code = status_code
        self.body = body


class TokenRefused(RunnerError):
    """401: the gateway token is unknown, revoked or expired."""


class RunNotFound(RunnerError):
    """404: no such run, or it is not targeted at this gateway."""


class RunConflict(RunnerError):
    """409: someone else claimed the run, or the run is closed (for instance failed as lost)."""


class RequestRefused(RunnerError):
    """400, 403, 413, 415: the body was refused; sending it again will not help."""


class Stopped(Exception):
    """Retrying was abandoned because the caller's stop event was set."""


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter. ``max_elapsed=None`` retries forever."""

    initial: float = 0.5
    maximum: float = 30.0
    multiplier: float = 2.0
    max_elapsed: float | None = None
    max_retry_after: float = 300.0

    def delay(self, attempt: int) -> float:
        ceiling = min(self.maximum, self.initial * self.multiplier**attempt)
        return random.uniform(ceiling / 2, ceiling)


def retry_after_seconds(response: httpx.Response) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date), or None."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _detail(response: httpx.Response) -> tuple[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500] or response.reason_phrase, None
    if isinstance(body, dict) and body.get("detail"):
        return str(body["detail"]), body
    return response.reason_phrase, body


def _wait_any(events: list[threading.Event], seconds: float) -> bool:
    """Sleep up to ``seconds``; True as soon as one of ``events`` is set."""
    deadline = time.monotonic() + seconds
    while True:
        if any(event.is_set() for event in events):
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        events[-1].wait(min(remaining, 0.1 if len(events) > 1 else remaining))


def new_idempotency_key() -> str:
    return f"eltr-{uuid.uuid4().hex}"


class RunnerClient:
    """The runner API for one gateway token.

    Thread-safe (httpx clients are). ``stop`` is an event that, once set, makes any retry
    loop give up with ``Stopped`` instead of sleeping again.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 15.0,
        retry: RetryPolicy | None = None,
        stop: threading.Event | None = None,
        transport: httpx.BaseTransport | None = None,
        on_retry: Callable[[str, str, float], None] | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self.stop = stop or threading.Event()
        self.on_retry = on_retry
        self.requests_sent = 0
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={
                "Authorization": f"Bearer {token}",
                "User-Agent": f"eltrunner/{__version__}",
                "Accept": "application/json",
            },
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            transport=transport,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RunnerClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the routes -------------------------------------------------------------------------

    def poll(self, *, stop: threading.Event | None = None) -> dict[str, Any]:
        """``GET /api/agent/runs``: ``{"data": [runs to claim or cancel], "meta": {gateway}}``.
        ``stop`` ends the retries of a server that is away (``Stopped``)."""
        return self.request("GET", "/api/agent/runs", stop=stop)

    def get_run(self, run_id: str, *, minimal: bool = True) -> dict[str, Any]:
        headers = {"Prefer": "return=minimal"} if minimal else {}
        return self.request("GET", f"/api/agent/runs/{run_id}", headers=headers)

    def claim(self, run_id: str) -> dict[str, Any] | None:
        """Move a queued run to ``running``; None when another runner won it (409)."""
        try:
            return self.patch(run_id, {"status": "running"})
        except RunConflict:
            return None

    def patch(
        self,
        run_id: str,
        body: dict[str, Any],
        *,
        idempotency_key: str | None = None,
        retry: RetryPolicy | None = None,
        stop: threading.Event | None = None,
    ) -> dict[str, Any]:
        """One PATCH, retried under one ``Idempotency-Key`` until the server answers."""
        headers = {
            "Idempotency-Key": idempotency_key or new_idempotency_key(),
            "Prefer": "return=minimal",
        }
        return self.request(
            "PATCH",
            f"/api/agent/runs/{run_id}",
            json=body,
            headers=headers,
            retry=retry,
            stop=stop,
        )

    # -- the transport ----------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        headers: dict[str, str] | None = None,
        retry: RetryPolicy | None = None,
        stop: threading.Event | None = None,
    ) -> dict[str, Any]:
        """Send until a final answer: 2xx returns the JSON body; 401/404/409/4xx raise; timeouts,
        connection errors, 429 and 5xx are retried (``Retry-After`` honoured)."""
        policy = retry or self.retry
        started = time.monotonic()
        attempt = 0
        stops = [self.stop] if stop is None else [self.stop, stop]
        while True:
            if any(event.is_set() for event in stops):
                raise Stopped(f"{method} {path} abandoned")
            wait: float | None = None
            reason = ""
            try:
                self.requests_sent += 1
                response = self._http.request(method, path, json=json, headers=headers)
            except httpx.TransportError as exc:
                reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            else:
                if response.is_success:
                    return response.json() if response.content else {}
                if response.status_code not in RETRIED_STATUSES:
                    raise self._refusal(response)
                reason = f"HTTP {response.status_code}"
                retry_after = retry_after_seconds(response)
                if retry_after is not None:
                    wait = min(retry_after, policy.max_retry_after)
            if wait is None:
                wait = policy.delay(attempt)
            attempt += 1
            elapsed = time.monotonic() - started
            if policy.max_elapsed is not None and elapsed + wait > policy.max_elapsed:
                raise RunnerError(
                    f"{method} {path}: gave up after {attempt} attempts ({reason})",
                    status_code=None,
                )
            if self.on_retry is not None:
                self.on_retry(f"{method} {path}", reason, wait)
            else:
                logger.warning("retrying %s %s in %.1fs: %s", method, path, wait, reason)
            if _wait_any(stops, wait):
                raise Stopped(f"{method} {path} abandoned")

    @staticmethod
    def _refusal(response: httpx.Response) -> RunnerError:
        detail, body = _detail(response)
        code = response.status_code
        kinds: dict[int, type[RunnerError]] = {
            401: TokenRefused,
            404: RunNotFound,
            409: RunConflict,
        }
        kind = kinds.get(code, RequestRefused)
        return kind(f"HTTP {code}: {detail}", status_code=code, body=body)
