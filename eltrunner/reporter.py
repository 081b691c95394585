"""Stream one run's logs, telemetry and nodes to the server in batches.

A ``RunReporter`` buffers what a job reports and ships it from a background thread: every
``flush_interval`` seconds or as soon as ``batch_lines`` lines are waiting (but not more often
than every ``min_request_interval`` unless a full 500-line request is waiting), as one PATCH with
``appendLogs`` / ``appendTelemetrySamples`` / ``telemetrySummary`` / ``nodes``. A request is
retried under its own ``Idempotency-Key`` until the server answers, so through an outage of the
control plane lines pile up in memory (up to ``max_buffered_lines``; beyond that the oldest are
dropped and the run's log says how many) and are then sent in order, each exactly once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from eltrunner.client import (
    RequestRefused,
    RunnerClient,
    RunnerError,
    Stopped,
    new_idempotency_key,
)

logger = logging.getLogger("eltrunner")

MAX_BATCH_LINES = 500  # the server's limit for appendLogs
MAX_BATCH_SAMPLES = 2000  # and for appendTelemetrySamples
MAX_BATCH_BYTES = 600_000  # well under the server's 1 MiB body limit
MAX_MESSAGE_CHARS = 10_000
TRUNCATED_SUFFIX = " … [truncated]"
LEVELS = ("info", "warn", "error")


def clean_message(message: str) -> str:
    """What the server accepts: no NUL, no lone surrogates, at most 10,000 characters."""
    message = message.replace("\x00", "\ufffd")
    message = message.encode("utf-8", "replace").decode("utf-8")
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[: MAX_MESSAGE_CHARS - len(TRUNCATED_SUFFIX)] + TRUNCATED_SUFFIX
    return message


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


@dataclass
class _Batch:
    body: dict[str, Any]
    key: str
    lines: int
    final: bool


class RunReporter:
    """Buffered, batched, retried reporting for one claimed run. Thread-safe.

    ``status`` is the run's status as the server last answered it (a cancel shows up here as
    ``cancel_requested``). ``error`` is set, and reporting stops, when the server refuses the
    run for good (token refused, run gone, run closed by the system).
    """

    def __init__(
        self,
        client: RunnerClient,
        run_id: str,
        *,
        flush_interval: float = 1.0,
        batch_lines: int = 200,
        max_buffered_lines: int = 100_000,
        max_buffered_samples: int = 20_000,
        heartbeat_interval: float | None = None,
        min_request_interval: float = 0.5,
        on_status: Callable[[str], None] | None = None,
    ):
        if not 1 <= batch_lines <= MAX_BATCH_LINES:
            raise ValueError(f"batch_lines must be 1 to {MAX_BATCH_LINES}")
        self.client = client
        self.run_id = run_id
        self.flush_interval = flush_interval
        self.batch_lines = batch_lines
        self.max_buffered_lines = max_buffered_lines
        self.max_buffered_samples = max_buffered_samples
        self.heartbeat_interval = heartbeat_interval
        self.min_request_interval = min_request_interval
        self.on_status = on_status
        self.status: str | None = None
        self.error: RunnerError | None = None
        self.lines_sent = 0
        self.requests = 0
        self.dropped_lines = 0
        self.refused_batches = 0

        self._cond = threading.Condition()
        self._lines: deque[dict[str, Any]] = deque()
        self._samples: deque[dict[str, Any]] = deque()
        self._summary: dict[str, Any] = {}
        self._nodes: dict[str, dict[str, Any]] = {}
        self._unreported_drops = [0, 0]  # lines, samples dropped since the last notice
        self._final: dict[str, Any] | None = None
        self._final_answer: dict[str, Any] | None = None
        self._in_flight = False
        self._flush_wanted = 0
        self._pending_since: float | None = None
        self._last_sent = time.monotonic()
        self._stop = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"reporter-{run_id}", daemon=True)
        self._thread.start()

    # -- what a job reports -----------------------------------------------------------------

    def log(self, level: str, message: str, node_id: str | None = None) -> None:
        """Queue one log line (``level`` is info, warn or error)."""
        if level not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS}")
        entry: dict[str, Any] = {"level": level, "message": clean_message(message)}
        if node_id:
            entry["nodeId"] = node_id[:200]
        with self._cond:
            self._lines.append(entry)
            overflow = len(self._lines) - self.max_buffered_lines
            for _ in range(max(0, overflow)):
                self._lines.popleft()
                self._unreported_drops[0] += 1
                self.dropped_lines += 1
            self._touch()

    def sample(self, values: dict[str, int | float], *, at: str | None = None) -> None:
        """Queue one telemetry point, stamped now unless ``at`` (ISO 8601) is given."""
        point: dict[str, Any] = {"at": at or utc_now_iso(), **values}
        with self._cond:
            self._samples.append(point)
            if len(self._samples) > self.max_buffered_samples:
                self._samples.popleft()
                self._unreported_drops[1] += 1
            self._touch()

    def summary(self, values: dict[str, Any]) -> None:
        """Shallow-merge ``values`` into the run's telemetry summary (sent with the next batch)."""
        with self._cond:
            self._summary.update(values)
            self._touch()

    def node(self, node_id: str, **fields: Any) -> None:
        """Upsert a node: ``status``, ``type``, ``startedAt``, ``finishedAt``, ``retries``,
        ``metrics`` (the names of the PATCH ``nodes`` field)."""
        with self._cond:
            self._nodes.setdefault(node_id, {"nodeId": node_id}).update(fields)
            self._touch()

    # -- flushing and finishing -------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Send everything queued so far; True once the server has stored it all."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._flush_wanted += 1
            self._cond.notify_all()
            try:
                while self._has_pending() or self._in_flight:
                    if self.error is not None or self._done.is_set():
                        return False
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return False
                    self._cond.wait(remaining if remaining is not None else 0.5)
                return True
            finally:
                self._flush_wanted -= 1

    def finish(
        self,
        status: str,
        *,
        error_summary: str | None = None,
        summary: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any] | None:
        """Send what is buffered, then the final ``status`` (with ``errorSummary`` and a last
        summary), and stop. Returns the server's answer to the final PATCH, or None when it
        could not be delivered (see ``error``)."""
        final: dict[str, Any] = {"status": status}
        if error_summary is not None:
            final["errorSummary"] = error_summary[:4000]
        with self._cond:
            if summary:
                self._summary.update(summary)
            self._final = final
            self._cond.notify_all()
        self._done.wait(timeout)
        return self._final_answer

    def close(self, *, timeout: float | None = 10.0) -> None:
        """Stop the background thread (what is still buffered after ``timeout`` is lost)."""
        if not self._done.is_set():
            self.flush(timeout)
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(timeout=5)

    @property
    def finished(self) -> bool:
        return self._final_answer is not None

    # -- the background thread --------------------------------------------------------------

    def _touch(self) -> None:
        if self._pending_since is None:
            # The thread may be asleep until a heartbeat: wake it to start the flush clock.
            self._pending_since = time.monotonic()
            self._cond.notify_all()
        waiting = len(self._lines)
        if (
            waiting in (self.batch_lines, MAX_BATCH_LINES)
            or len(self._samples) == MAX_BATCH_SAMPLES
        ):
            self._cond.notify_all()

    def _has_pending(self) -> bool:
        return bool(
            self._lines
            or self._samples
            or self._summary
            or self._nodes
            or any(self._unreported_drops)
            or self._final is not None
        )

    def _wait_time(self) -> float | None:
        """Seconds until the thread must send something; 0 to send now; None to wait on."""
        if self._final is not None or self._flush_wanted:
            return 0.0 if self._has_pending() else None
        if len(self._lines) >= MAX_BATCH_LINES or len(self._samples) >= MAX_BATCH_SAMPLES:
            return 0.0  # a full request is waiting: send it
        now = time.monotonic()
        if len(self._lines) >= self.batch_lines:
            # Enough for a batch; still at most one request per min_request_interval, so that
            # a chatty job costs a few requests a second (the batch grows meanwhile).
            return max(0.0, self._last_sent + self.min_request_interval - now)
        waits = []
        if self._has_pending() and self._pending_since is not None:
            waits.append(self._pending_since + self.flush_interval - now)
        if self.heartbeat_interval is not None:
            waits.append(self._last_sent + self.heartbeat_interval - now)
        return max(0.0, min(waits)) if waits else None

    def _take(self) -> _Batch:
        """The next request, taken off the head of the buffers (call under the lock)."""
        body: dict[str, Any] = {}
        lines: list[dict[str, Any]] = []
        size = 0
        dropped_lines, dropped_samples = self._unreported_drops
        if dropped_lines or dropped_samples:
            lines.append(
                {
                    "level": "warn",
                    "message": f"[eltrunner] dropped {dropped_lines} log lines and "
                    f"{dropped_samples} telemetry samples: the control plane was unreachable "
                    f"and the buffer ({self.max_buffered_lines} lines) was full",
                }
            )
            self._unreported_drops = [0, 0]
        while self._lines and len(lines) < MAX_BATCH_LINES:
            entry_size = len(self._lines[0]["message"]) * 2 + 60
            if lines and size + entry_size > MAX_BATCH_BYTES:
                break
            lines.append(self._lines.popleft())
            size += entry_size
        if lines:
            body["appendLogs"] = lines
        samples = [
            self._samples.popleft() for _ in range(min(len(self._samples), MAX_BATCH_SAMPLES))
        ]
        if samples:
            body["appendTelemetrySamples"] = samples
        if self._summary:
            body["telemetrySummary"], self._summary = self._summary, {}
        if self._nodes:
            body["nodes"], self._nodes = list(self._nodes.values()), {}
        final = False
        if self._final is not None and not self._lines and not self._samples:
            body.update(self._final)
            final = True
        self._pending_since = time.monotonic() if self._has_pending() else None
        return _Batch(body=body, key=new_idempotency_key(), lines=len(lines), final=final)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                with self._cond:
                    wait = self._wait_time()
                    if wait is None or wait > 0:
                        self._cond.wait(wait)
                        continue
                    batch = self._take()
                    self._in_flight = True
                try:
                    if not self._send(batch):
                        return
                finally:
                    with self._cond:
                        self._in_flight = False
                        self._cond.notify_all()
                if self._final_answer is not None:
                    return
        finally:
            self._done.set()
            with self._cond:
                self._cond.notify_all()

    def _send(self, batch: _Batch) -> bool:
        """Deliver one batch; False when reporting must stop.

        A batch the server refuses (400) would be refused again, so it is not retried as is:
        its log lines are sent again without the rest (telemetry, nodes), with a line saying
        what was refused, and a final status goes out on its own if even that fails. A job's
        lines are the last thing to lose."""
        attempts = [batch]
        while attempts:
            attempt = attempts.pop(0)
            try:
                answer = self.client.patch(
                    self.run_id, attempt.body, idempotency_key=attempt.key, stop=self._stop
                )
            except Stopped:
                return False
            except RequestRefused as exc:
                self.refused_batches += 1
                logger.error("run %s: report refused: %s", self.run_id, exc)
                if attempt is batch:
                    attempts = self._fallbacks(batch, exc)
                continue
            except RunnerError as exc:
                self.error = exc
                logger.error("run %s: reporting stopped: %s", self.run_id, exc)
                return False
            self._accepted(attempt, answer)
            return True
        return not batch.final

    def _fallbacks(self, batch: _Batch, exc: RequestRefused) -> list[_Batch]:
        final = {key: batch.body[key] for key in ("status", "errorSummary") if key in batch.body}
        fields = sorted((exc.body or {}).get("errors", {})) if isinstance(exc.body, dict) else []
        notice = {
            "level": "warn",
            "message": f"[eltrunner] the server refused part of a report ({', '.join(fields)}): "
            f"{exc}"[:2000],
        }
        fallbacks = []
        lines = batch.body.get("appendLogs", [])
        if set(batch.body) - {"appendLogs", *final}:
            body = {"appendLogs": [*lines, notice][-MAX_BATCH_LINES:], **final}
            fallbacks.append(
                _Batch(body=body, key=new_idempotency_key(), lines=len(lines), final=batch.final)
            )
        if final and (lines or len(fallbacks) > 0):
            fallbacks.append(_Batch(body=final, key=new_idempotency_key(), lines=0, final=True))
        return fallbacks

    def _accepted(self, batch: _Batch, answer: dict[str, Any]) -> None:
        self.requests += 1
        self.lines_sent += batch.lines
        self._last_sent = time.monotonic()
        status = answer.get("status")
        if status and status != self.status:
            self.status = status
            if self.on_status is not None:
                self.on_status(status)
        if batch.final:
            self._final_answer = answer
