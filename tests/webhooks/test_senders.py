"""Isolated senders: a receiver that hangs holds its share of one worker's senders, never the
others' deliveries; after a few unanswered attempts its circuit breaker pauses it.

The worker is a real ``run_worker`` process on the test database; both receivers are real HTTP
servers on loopback.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection

from tests.webhooks.conftest import Receiver, Reply, finish_run, make_endpoint, make_run
from webhooks.models import DeliveryStatus, WebhookDelivery
from webhooks.senders import SenderPool

HANG_SECONDS = 30
FINISHES = 10
FINISH_EVERY = 3.0
FAST_WITHIN = 5.0


def database_url_of_this_test() -> str:
    params = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{params['NAME']}"
    auth = params["USER"] + (f":{params['PASSWORD']}" if params.get("PASSWORD") else "")
    host = f"{params['HOST'] or '127.0.0.1'}:{params['PORT'] or 5432}"
    return f"postgres://{auth}@{host}/{params['NAME']}"


@contextlib.contextmanager
def running_worker(log_path: Path, shared_state_dir: Path, **extra_env: str):
    """A ``run_worker`` process on the test database, stopped (SIGTERM) on the way out."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url_of_this_test(),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "WEBHOOK_ALLOW_PRIVATE_URLS": "true",
        "WEBHOOK_SEND_CONCURRENCY": "4",
        "WEBHOOK_ENDPOINT_CONCURRENCY": "2",
        "WEBHOOK_BREAKER_FAILURES": "3",
        # Shorter than the default 15 s so that the breaker opens within the test's half minute.
        "WEBHOOK_TIMEOUT_SECONDS": "5",
        "PERIODIC_TASKS_INTERVAL": "5",
        "SHARED_STATE_DIR": str(shared_state_dir),
        "PYTHONUNBUFFERED": "1",
        **extra_env,
    }
    log = open(log_path, "wb")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "manage.py", "run_worker"],
        cwd=django_settings.BASE_DIR,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield process
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        log.close()


@pytest.fixture
def worker_process(tmp_path, shared_state_dir):
    with running_worker(tmp_path / "worker.log", shared_state_dir) as process:
        yield process


def wait_for_requests(receiver: Receiver, count: int, *, seconds: float) -> None:
    deadline = time.time() + seconds
    while len(receiver.requests) < count and time.time() < deadline:
        time.sleep(0.1)


@pytest.mark.django_db(transaction=True)
def test_a_hanging_receiver_never_delays_another_endpoint(worker_process, settings, tmp_path):
    settings.WEBHOOK_ALLOW_PRIVATE_URLS = True
    hanging, fast = Receiver(), Receiver()
    hanging.reply(*[Reply(hang_seconds=HANG_SECONDS) for _ in range(100)])
    try:
        make_endpoint(fast.url)
        finish_run(make_run())  # the worker is up once this one has arrived
        wait_for_requests(fast, 1, seconds=60)
        assert fast.requests, (tmp_path / "worker.log").read_text()
        fast.requests.clear()
        slow_endpoint = make_endpoint(hanging.url)
        finished_at: dict[str, float] = {}
        for _ in range(FINISHES):
            run = make_run()
            finish_run(run)
            finished_at[run.public_id] = time.time()
            time.sleep(FINISH_EVERY)
        wait_for_requests(fast, FINISHES, seconds=FAST_WITHIN + 5)

        received_at = {json.loads(r.body)["data"]["id"]: r.at for r in fast.requests}
        log = (tmp_path / "worker.log").read_text()
        assert set(received_at) == set(finished_at), log
        lags = {run_id: received_at[run_id] - finished_at[run_id] for run_id in finished_at}
        assert max(lags.values()) < FAST_WITHIN, lags
        # The hanging endpoint was tried, but never with more than its share at once, and its
        # breaker opened after three unanswered attempts: a handful of requests in 30 s.
        assert 3 <= len(hanging.requests) <= 6, len(hanging.requests)
        assert "unreachable 3 times in a row" in log, log
        # Nothing is lost: the hanging endpoint's deliveries are still pending, to be retried.
        pending = WebhookDelivery.objects.filter(endpoint=slow_endpoint)
        assert pending.count() == FINISHES
        assert set(pending.values_list("status", flat=True)) == {DeliveryStatus.PENDING}
    finally:
        hanging.close()
        fast.close()


BACKLOG = 30
ANSWER_SECONDS = 0.2


@pytest.mark.django_db(transaction=True)
def test_a_backlog_drains_as_fast_as_its_endpoint_answers(settings, tmp_path, shared_state_dir):
    """Thirty runs finish at once for an endpoint that takes 0.2 s to answer: two deliveries go
    out at a time (its share) and the others are refused a slot. Each send that ends hands its
    slot to a waiting delivery at once, so the thirty are out in about 3 s of sending, not two
    per poll (half a minute apart here) or at the sweep of overdue deliveries (a minute)."""
    settings.WEBHOOK_ALLOW_PRIVATE_URLS = True
    receiver = Receiver()
    receiver.reply(*[Reply(hang_seconds=ANSWER_SECONDS) for _ in range(BACKLOG + 1)])
    log_path = tmp_path / "worker.log"
    try:
        make_endpoint(receiver.url)
        with running_worker(log_path, shared_state_dir, WEBHOOK_POLL_SECONDS="30"):
            finish_run(make_run())  # the worker is up once this one has arrived
            wait_for_requests(receiver, 1, seconds=60)
            assert len(receiver.requests) == 1, log_path.read_text()
            started = time.time()
            for _ in range(BACKLOG):
                finish_run(make_run())
            wait_for_requests(receiver, BACKLOG + 1, seconds=20)
            elapsed = time.time() - started

        assert len(receiver.requests) == BACKLOG + 1, log_path.read_text()
        assert elapsed < 12, elapsed  # 30 answers of 0.2 s, two at a time: 3 s, plus the finishes
        assert not WebhookDelivery.objects.exclude(status=DeliveryStatus.SUCCEEDED).exists()
    finally:
        receiver.close()


def test_a_freed_slot_wakes_the_poll_only_when_a_delivery_was_refused():
    """The pool's bookkeeping behind the test above (sending replaced by nothing)."""
    pool = bookkeeping_pool(concurrency=4, per_endpoint=2, breaker_failures=3, breaker_seconds=30)

    assert pool.offer(1, 1) and pool.offer(2, 1)
    pool._done(1, 1, reached=True)
    assert not pool.wait_for_slot(0)  # nothing is waiting: the poll keeps its interval
    assert pool.offer(3, 1)
    assert not pool.offer(4, 1)  # refused: the endpoint has its share
    pool._done(2, 1, reached=True)
    assert pool.wait_for_slot(0)  # the poll runs now, and offers the refused one again


@pytest.mark.django_db(transaction=True)
def test_a_poll_that_leaves_an_endpoint_out_wakes_again_when_its_slot_frees(settings):
    """An endpoint at its share when the poll runs: its waiting deliveries are not read, and the
    end of one of its sends brings the poll back at once."""
    settings.WEBHOOK_ALLOW_PRIVATE_URLS = True
    endpoint = make_endpoint("http://127.0.0.1:9/busy")
    finish_run(make_run())
    pool = bookkeeping_pool(concurrency=4, per_endpoint=1, breaker_failures=3, breaker_seconds=30)
    assert pool.offer(-1, endpoint.pk)  # its one slot is taken

    assert pool.poll() == 0
    assert not pool.wait_for_slot(0)
    pool._done(-1, endpoint.pk, reached=True)
    assert pool.wait_for_slot(0)
    assert pool.poll() == 1


def test_one_endpoint_never_holds_more_than_its_share():
    """The pool's bookkeeping, with sending replaced by nothing (the test above sends)."""
    pool = bookkeeping_pool(concurrency=4, per_endpoint=2, breaker_failures=3, breaker_seconds=30)

    assert [pool.offer(delivery_id, 1) for delivery_id in (1, 2, 3)] == [True, True, False]
    assert pool.offer(4, 2) and pool.offer(5, 2)
    assert not pool.offer(6, 3)  # all four senders busy
    assert pool.in_flight() == {1: 2, 2: 2}

    pool._done(1, 1, reached=False)
    assert pool.offer(3, 1)  # a freed slot goes to the next delivery
    pool._done(2, 1, reached=False)
    pool._done(3, 1, reached=False)  # the third unanswered attempt in a row
    assert pool.open_breakers() == [1]
    assert not pool.offer(7, 1)
    pool._done(4, 2, reached=True)
    assert pool.offer(8, 3)  # other endpoints carry on

    pool._breakers[1].open_until = 0  # the pause is over: one trial attempt, not two
    assert pool.offer(9, 1)
    assert not pool.offer(10, 1)
    pool._done(9, 1, reached=True)
    assert pool.open_breakers() == []
    assert pool.offer(10, 1) and pool.offer(11, 1)


@pytest.mark.django_db(transaction=True)
def test_a_backlog_behind_a_paused_endpoint_never_hides_the_others(settings):
    """More due deliveries on a paused endpoint than one poll reads, and one on a healthy
    endpoint: the poll still offers the healthy one."""
    settings.WEBHOOK_ALLOW_PRIVATE_URLS = True
    paused = make_endpoint("http://127.0.0.1:9/paused")
    for _ in range(12):
        finish_run(make_run())
    healthy = make_endpoint("http://127.0.0.1:9/healthy")
    finish_run(make_run())
    [waiting] = WebhookDelivery.objects.filter(endpoint=healthy)
    pool = bookkeeping_pool(concurrency=4, per_endpoint=2, breaker_failures=1, breaker_seconds=60)
    assert pool.offer(-1, paused.pk)
    pool._done(-1, paused.pk, reached=False)  # its breaker opens
    assert pool.open_breakers() == [paused.pk]

    assert pool.poll(limit=5) == 1  # five rows read: without the filter, all the paused one's
    assert pool.in_flight() == {healthy.pk: 1}  # endpoint -> deliveries in flight
    assert WebhookDelivery.objects.filter(pk=waiting.pk, status=DeliveryStatus.PENDING).exists()


class _NoExecutor:
    def submit(self, *args):
        return None


def bookkeeping_pool(**options) -> SenderPool:
    """A pool whose sends go nowhere: only its bookkeeping is under test."""
    pool = SenderPool(**options)
    pool._executor.shutdown()
    pool._executor = _NoExecutor()
    return pool
