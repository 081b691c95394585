"""Webhook senders in the worker: several deliveries at once, no endpoint holding more than its
share, and a circuit breaker per endpoint that keeps timing out.

The worker process starts one ``SenderPool`` (``run_worker``). Deliveries reach it two ways: the
``webhook_delivery_send`` task, which hands its delivery to the pool and returns at once (so a
hanging receiver never holds db_worker), and a poll of due deliveries (deliveries that were
refused a slot earlier, retries that came due). The poll runs every ``WEBHOOK_POLL_SECONDS``,
and at once whenever a send ends while a delivery it could take was refused: a backlog drains as
fast as its endpoints answer, not a share of slots per poll interval.
Each send still goes through ``services.webhook_delivery_attempt``: the lease on the delivery row
is what makes a delivery go out once at a time across every worker, so the pool's own
bookkeeping only decides what this process tries next, never what is correct.

- ``WEBHOOK_SEND_CONCURRENCY`` sends at once per worker process (threads);
- ``WEBHOOK_ENDPOINT_CONCURRENCY`` of them at most for one endpoint, so a receiver that hangs
  holds that many threads for its timeout and the others keep the rest;
- ``WEBHOOK_BREAKER_FAILURES`` attempts in a row that got no answer (timeout, refused
  connection) open the endpoint's breaker: its deliveries wait, pending, for
  ``WEBHOOK_BREAKER_SECONDS`` (doubling while it stays unreachable, at most
  ``WEBHOOK_BREAKER_MAX_SECONDS``), then one trial attempt decides whether it closes.

The breaker is per worker process: each worker learns on its own that an endpoint is down, which
costs at most ``WEBHOOK_BREAKER_FAILURES`` timeouts per worker.
"""

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from webhooks import services
from webhooks.models import DeliveryStatus, WebhookDelivery
from webhooks.selectors import webhook_deliveries_due

logger = logging.getLogger(__name__)

_running: "SenderPool | None" = None


def running_pool() -> "SenderPool | None":
    """The pool of this worker process, if it runs one."""
    return _running


@dataclass
class Breaker:
    failures: int = 0
    open_until: float = 0.0
    cooldown: float = 0.0
    trial: bool = False  # a half-open trial attempt is in flight


class SenderPool:
    def __init__(
        self,
        *,
        concurrency: int | None = None,
        per_endpoint: int | None = None,
        breaker_failures: int | None = None,
        breaker_seconds: float | None = None,
        breaker_max_seconds: float | None = None,
    ) -> None:
        self.concurrency = concurrency or settings.WEBHOOK_SEND_CONCURRENCY
        self.per_endpoint = min(
            per_endpoint or settings.WEBHOOK_ENDPOINT_CONCURRENCY, self.concurrency
        )
        self.breaker_failures = breaker_failures or settings.WEBHOOK_BREAKER_FAILURES
        self.breaker_seconds = breaker_seconds or settings.WEBHOOK_BREAKER_SECONDS
        self.breaker_max_seconds = breaker_max_seconds or settings.WEBHOOK_BREAKER_MAX_SECONDS
        self._executor = ThreadPoolExecutor(self.concurrency, thread_name_prefix="webhook-send")
        self._lock = threading.Lock()
        self._in_flight: dict[int, int] = {}  # delivery id -> endpoint id
        self._per_endpoint: dict[int, int] = {}
        self._breakers: dict[int, Breaker] = {}
        # Set when a send ends while a delivery was refused a slot since the last poll.
        self._refused = False
        self._slot_freed = threading.Event()

    # Lifecycle

    def start(self) -> "SenderPool":
        global _running
        _running = self
        return self

    def stop(self, *, wait: bool = True) -> None:
        global _running
        if _running is self:
            _running = None
        self._slot_freed.set()  # the poll loop wakes up, and sees that it must stop
        self._executor.shutdown(wait=wait, cancel_futures=True)

    def wait_for_slot(self, timeout: float) -> bool:
        """Until a send ends with deliveries left waiting for a slot (True), or ``timeout``."""
        return self._slot_freed.wait(timeout)

    # What to send

    def offer(self, delivery_id: int, endpoint_id: int) -> bool:
        """Start sending this delivery if a slot is free for it; False leaves it for later."""
        now = time.monotonic()
        with self._lock:
            if delivery_id in self._in_flight:
                return True
            if len(self._in_flight) >= self.concurrency:
                self._refused = True
                return False
            busy = self._per_endpoint.get(endpoint_id, 0)
            breaker = self._breakers.get(endpoint_id)
            if breaker is not None and breaker.failures >= self.breaker_failures:
                if now < breaker.open_until or breaker.trial:
                    return False
                breaker.trial = True  # half-open: one attempt decides
            elif busy >= self.per_endpoint:
                self._refused = True
                return False
            self._in_flight[delivery_id] = endpoint_id
            self._per_endpoint[endpoint_id] = busy + 1
        self._executor.submit(self._send, delivery_id, endpoint_id)
        return True

    def offer_delivery(self, delivery_id: int) -> bool:
        endpoint_id = (
            WebhookDelivery.objects.filter(pk=delivery_id, status=DeliveryStatus.PENDING)
            .values_list("endpoint_id", flat=True)
            .first()
        )
        return endpoint_id is not None and self.offer(delivery_id, endpoint_id)

    def _blocked_endpoints(self, now: float) -> list[int]:
        """Endpoints that could take no delivery now: at their share, or behind an open
        breaker. Call with the lock held."""
        blocked = {
            endpoint_id
            for endpoint_id, busy in self._per_endpoint.items()
            if busy >= self.per_endpoint
        }
        blocked.update(
            endpoint_id
            for endpoint_id, breaker in self._breakers.items()
            if breaker.failures >= self.breaker_failures
            and (now < breaker.open_until or breaker.trial)
        )
        return sorted(blocked)

    def poll(self, *, limit: int = 200) -> int:
        """Offer the due, unleased deliveries, oldest first; answers how many were started.
        Endpoints that can take none now are left out of the query, so a backlog behind one
        paused endpoint never hides the deliveries of the others."""
        with self._lock:
            free = self.concurrency - len(self._in_flight)
            blocked = self._blocked_endpoints(time.monotonic())
            # Deliveries this poll leaves out (no sender free, or their endpoint at its share)
            # wait for a slot as much as the ones ``offer`` refuses.
            self._refused = free <= 0 or any(
                busy >= self.per_endpoint for busy in self._per_endpoint.values()
            )
            self._slot_freed.clear()
        if free <= 0:
            return 0
        due = (
            webhook_deliveries_due(now=timezone.now())
            .exclude(endpoint_id__in=blocked)
            .order_by("next_attempt_at")
            .values_list("pk", "endpoint_id")[:limit]
        )
        started = 0
        for delivery_id, endpoint_id in due:
            started += self.offer(delivery_id, endpoint_id)
        return started

    # Sending

    def _send(self, delivery_id: int, endpoint_id: int) -> None:
        reached: bool | None = None
        try:
            close_old_connections()
            attempt = services.webhook_delivery_attempt(delivery_id=delivery_id)
            if attempt is not None:
                reached = attempt.status_code is not None
        except Exception:
            logger.exception("webhook send of delivery %s failed", delivery_id)
        finally:
            self._done(delivery_id, endpoint_id, reached=reached)
            if not connection.in_atomic_block:
                connection.close()  # a thread's connection is not reused by the next one

    def _done(self, delivery_id: int, endpoint_id: int, *, reached: bool | None) -> None:
        with self._lock:
            self._in_flight.pop(delivery_id, None)
            self._per_endpoint[endpoint_id] -= 1
            if not self._per_endpoint[endpoint_id]:
                del self._per_endpoint[endpoint_id]
            if self._refused:
                self._slot_freed.set()
            breaker = self._breakers.setdefault(endpoint_id, Breaker())
            breaker.trial = False
            if reached is None:
                return  # nothing was sent (leased elsewhere, not due): no news of the endpoint
            if reached:
                self._breakers.pop(endpoint_id, None)
                return
            breaker.failures += 1
            if breaker.failures >= self.breaker_failures:
                breaker.cooldown = min(
                    max(breaker.cooldown * 2, self.breaker_seconds), self.breaker_max_seconds
                )
                breaker.open_until = time.monotonic() + breaker.cooldown
                if breaker.failures == self.breaker_failures:
                    logger.warning(
                        "webhook endpoint %s unreachable %d times in a row; pausing it for %.0fs",
                        endpoint_id,
                        breaker.failures,
                        breaker.cooldown,
                    )

    # Introspection (metrics, tests)

    def in_flight(self) -> dict[int, int]:
        with self._lock:
            return dict(self._per_endpoint)

    def open_breakers(self) -> list[int]:
        now = time.monotonic()
        with self._lock:
            return [
                endpoint_id
                for endpoint_id, breaker in self._breakers.items()
                if breaker.failures >= self.breaker_failures and now < breaker.open_until
            ]


def serve(stop: threading.Event) -> Callable[[], None]:
    """Start this worker's pool and its poll of due deliveries (``settings.WORKER_SERVICES``)."""
    pool = SenderPool().start()

    def poll_due() -> None:
        while not stop.is_set():
            pool.wait_for_slot(settings.WEBHOOK_POLL_SECONDS)
            if stop.is_set():
                break
            try:
                pool.poll()
            except Exception:
                logger.exception("could not poll due webhook deliveries")
            finally:
                close_old_connections()

    threading.Thread(target=poll_due, name="webhook-poll", daemon=True).start()
    return lambda: pool.stop(wait=False)
