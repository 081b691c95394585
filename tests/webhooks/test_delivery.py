"""End to end: a run finishes, the worker sends, a real receiver on 127.0.0.1 verifies."""

import json
import logging
import threading
import time
from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth.models import Group, User
from django.db import transaction
from django.utils import timezone
from django_tasks_db.models import DBTaskResult
from rest_framework.test import APIClient
from standardwebhooks import Webhook

from common.actors import Actor
from common.roles import Role
from gateways.services import api_key_issue
from runs.models import RunStatus
from runs.services import run_finished_event
from webhooks import services, tasks
from webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookEvent

from .conftest import (
    Reply,
    finish_run,
    make_endpoint,
    make_gateway,
    make_pipeline,
    make_run,
    run_worker,
)

pytestmark = pytest.mark.django_db(transaction=True)


def secret_of(endpoint) -> str:
    endpoint.refresh_from_db()
    return endpoint.secret


def verify(receiver, secret: str, index: int = -1) -> dict:
    request = receiver.requests[index]
    return Webhook(secret).verify(request.body, request.headers)


def test_a_finished_run_is_delivered_signed_and_verifies(receiver):
    gateway = make_gateway(name="edge-1")
    pipeline = make_pipeline(name="orders")
    endpoint = make_endpoint(receiver.url)
    run = make_run(pipeline=pipeline, gateway=gateway, trigger={"by": "alice"})
    finish_run(run, telemetry_summary={"rowsLoaded": 10, "bytesLoaded": 2048})

    run_worker()

    assert len(receiver.requests) == 1
    request = receiver.requests[0]
    payload = verify(receiver, secret_of(endpoint))
    event = WebhookEvent.objects.get(run=run)
    assert request.headers["webhook-id"] == event.public_id
    assert event.public_id.startswith("msg_")
    assert request.headers["content-type"] == "application/json"
    assert request.body == event.body.encode()
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 60
    assert payload["type"] == "run.succeeded"
    assert payload["timestamp"].endswith("Z")
    data = payload["data"]
    assert data["id"] == run.public_id
    assert data["pipelineId"] == pipeline.public_id
    assert data["pipelineName"] == "orders"
    assert data["gateway"] == {"id": gateway.public_id, "name": "edge-1"}
    assert data["status"] == "succeeded"
    assert data["trigger"] == {"type": "api", "by": "alice"}
    assert data["finishedAt"].endswith("Z")
    assert data["durationSeconds"] >= 0
    assert data["errorSummary"] is None
    assert data["telemetrySummary"] == {"rowsLoaded": 10, "bytesLoaded": 2048}

    delivery = WebhookDelivery.objects.get(event=event)
    assert delivery.status == DeliveryStatus.SUCCEEDED
    attempt = delivery.attempts.get()
    assert attempt.succeeded and attempt.status_code == 200
    assert attempt.response_body == '{"ok":true}'


def test_a_failed_run_carries_its_error_and_omits_empty_telemetry(receiver):
    endpoint = make_endpoint(receiver.url)
    finish_run(make_run(), RunStatus.FAILED, error_summary="boom")
    run_worker()
    payload = verify(receiver, secret_of(endpoint))
    assert payload["type"] == "run.failed"
    assert payload["data"]["errorSummary"] == "boom"
    assert payload["data"]["gateway"] is None
    assert "telemetrySummary" not in payload["data"]


def test_endpoints_get_only_the_events_and_pipelines_they_asked_for(receiver):
    wanted, other = make_pipeline(), make_pipeline()
    make_endpoint(receiver.url + "/failed-only", events=["run.failed"])
    make_endpoint(receiver.url + "/other-pipeline", events=["run.succeeded"], pipeline=other)
    make_endpoint(receiver.url + "/this-pipeline", events=["run.succeeded"], pipeline=wanted)
    make_endpoint(receiver.url + "/everything", events=["run.succeeded", "run.canceled"])
    disabled = make_endpoint(receiver.url + "/disabled", events=["run.succeeded"])
    services.webhook_endpoint_update(
        actor=Actor.system(), endpoint=disabled, changes={"enabled": False}
    )

    finish_run(make_run(pipeline=wanted))
    run_worker()

    assert sorted(r.path for r in receiver.requests) == [
        "/hooks/everything",
        "/hooks/this-pipeline",
    ]

    receiver.requests.clear()
    finish_run(make_run(pipeline=other), RunStatus.CANCELED)
    run_worker()
    assert [r.path for r in receiver.requests] == ["/hooks/everything"]


def test_a_receiver_failing_twice_gets_three_attempts_with_one_webhook_id(receiver):
    endpoint = make_endpoint(receiver.url)
    receiver.reply(Reply(status=500), Reply(status=502, body=b"bad gateway"))
    start = timezone.now()
    with time_machine.travel(start, tick=True) as traveller:
        finish_run(make_run())
        run_worker()
        delivery = WebhookDelivery.objects.get()
        assert len(receiver.requests) == 1
        verify(receiver, secret_of(endpoint))
        assert delivery.status == DeliveryStatus.PENDING
        # From the attempt's start: the scheduled wait (plus up to 10% jitter) counts from when
        # the answer came back, so the request's own time is added (allowed up to a second).
        first_wait = delivery.next_attempt_at - delivery.last_attempt_at
        assert timedelta(seconds=5) <= first_wait <= timedelta(seconds=5.5 + 1)

        run_worker()  # not due yet: nothing is sent early
        assert len(receiver.requests) == 1

        traveller.shift(6)
        run_worker()
        assert len(receiver.requests) == 2
        verify(receiver, secret_of(endpoint))
        delivery.refresh_from_db()
        second_wait = delivery.next_attempt_at - delivery.last_attempt_at
        assert timedelta(minutes=5) <= second_wait <= timedelta(minutes=5.5, seconds=1)

        traveller.shift(5.5 * 60 + 1)
        run_worker()
        assert len(receiver.requests) == 3
        ids = {r.headers["webhook-id"] for r in receiver.requests}
        assert ids == {WebhookEvent.objects.get().public_id}
        verify(receiver, secret_of(endpoint))  # the others were verified as they arrived
        assert receiver.requests[0].body == receiver.requests[2].body

    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SUCCEEDED
    attempts = list(delivery.attempts.values_list("status_code", "succeeded", "response_body"))
    assert attempts == [
        (500, False, '{"ok":true}'),
        (502, False, "bad gateway"),
        (200, True, '{"ok":true}'),
    ]
    endpoint.refresh_from_db()
    assert endpoint.failing_since is None


def test_410_disables_the_endpoint_at_once(receiver):
    endpoint = make_endpoint(receiver.url)
    receiver.reply(Reply(status=410))
    finish_run(make_run())
    run_worker()

    endpoint.refresh_from_db()
    assert not endpoint.enabled
    assert "410" in endpoint.disabled_reason
    assert WebhookDelivery.objects.get().status == DeliveryStatus.FAILED

    finish_run(make_run())
    with time_machine.travel(timezone.now() + timedelta(hours=1)):
        run_worker()
    assert len(receiver.requests) == 1
    assert WebhookEvent.objects.count() == 2
    assert WebhookDelivery.objects.count() == 1  # a disabled endpoint gets no new deliveries


def test_retry_after_on_429_is_honoured(receiver):
    make_endpoint(receiver.url)
    receiver.reply(Reply(status=429, headers={"Retry-After": "120"}))
    with time_machine.travel(timezone.now(), tick=True) as traveller:
        finish_run(make_run())
        run_worker()
        delivery = WebhookDelivery.objects.get()
        wait = delivery.next_attempt_at - delivery.last_attempt_at
        assert timedelta(seconds=120) <= wait <= timedelta(seconds=121)
        traveller.shift(60)
        run_worker()
        assert len(receiver.requests) == 1
        traveller.shift(61)
        run_worker()
        assert len(receiver.requests) == 2


def test_redirects_are_not_followed_and_count_as_failures(receiver):
    make_endpoint(receiver.url)
    receiver.reply(Reply(status=302, headers={"Location": receiver.url + "/elsewhere"}))
    finish_run(make_run())
    run_worker()
    assert [r.path for r in receiver.requests] == ["/hooks"]
    attempt = WebhookAttempt.objects.get()
    assert attempt.status_code == 302 and not attempt.succeeded
    assert "Redirect" in attempt.error
    assert WebhookDelivery.objects.get().status == DeliveryStatus.PENDING


def test_a_delivery_gives_up_after_the_last_scheduled_attempt(receiver, settings):
    settings.WEBHOOK_RETRY_SCHEDULE_SECONDS = (1, 1)
    make_endpoint(receiver.url)
    receiver.reply(*[Reply(status=500)] * 5)
    with time_machine.travel(timezone.now(), tick=True) as traveller:
        finish_run(make_run())
        for _ in range(4):
            run_worker()
            traveller.shift(2)
    assert len(receiver.requests) == 3
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.attempts.count() == 3


def test_an_endpoint_failing_for_five_days_is_disabled_and_logged(receiver, caplog):
    endpoint = make_endpoint(receiver.url)
    receiver.reply(*[Reply(status=500)] * 3)
    finish_run(make_run())
    run_worker()
    endpoint.refresh_from_db()
    assert endpoint.enabled and endpoint.failing_since is not None

    second = make_run()
    with time_machine.travel(timezone.now() + timedelta(days=5, minutes=1), tick=True):
        finish_run(second)
        with caplog.at_level(logging.WARNING, logger="webhooks.services"):
            run_worker()

    endpoint.refresh_from_db()
    assert not endpoint.enabled
    assert "5 days" in endpoint.disabled_reason
    assert endpoint.public_id in caplog.text
    assert endpoint.secret not in caplog.text
    assert not WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING).exists()


def test_a_success_clears_the_failure_streak(receiver):
    endpoint = make_endpoint(receiver.url)
    receiver.reply(Reply(status=500))
    with time_machine.travel(timezone.now(), tick=True) as traveller:
        finish_run(make_run())
        run_worker()
        endpoint.refresh_from_db()
        assert endpoint.failing_since is not None
        traveller.shift(7)
        run_worker()
    endpoint.refresh_from_db()
    assert endpoint.failing_since is None


def test_a_timeout_is_recorded_and_retried(receiver, settings):
    settings.WEBHOOK_TIMEOUT_SECONDS = 0.5
    make_endpoint(receiver.url)
    receiver.reply(Reply(hang_seconds=5))
    finish_run(make_run())
    run_worker()
    attempt = WebhookAttempt.objects.get()
    assert attempt.status_code is None
    assert "Timed out" in attempt.error
    assert WebhookDelivery.objects.get().status == DeliveryStatus.PENDING


def test_a_connection_error_is_recorded_and_retried(receiver):
    receiver.close()
    make_endpoint(receiver.url)
    finish_run(make_run())
    run_worker()
    attempt = WebhookAttempt.objects.get()
    assert attempt.status_code is None and attempt.error
    assert WebhookDelivery.objects.get().next_attempt_at is not None


def test_a_crash_after_sending_resends_with_the_same_webhook_id(receiver, monkeypatch):
    endpoint = make_endpoint(receiver.url)

    def crash(**kwargs):
        raise SystemExit("worker killed")

    with time_machine.travel(timezone.now(), tick=True) as traveller:
        finish_run(make_run())
        monkeypatch.setattr(services, "_attempt_record", crash)
        run_worker()  # sent, then died before recording anything
        monkeypatch.undo()
        assert len(receiver.requests) == 1
        assert not WebhookAttempt.objects.exists()

        traveller.shift(30)
        assert services.webhook_deliveries_enqueue_overdue() == 0  # still leased
        traveller.shift(150)
        assert services.webhook_deliveries_enqueue_overdue() == 1
        run_worker()

    assert len(receiver.requests) == 2
    first, second = receiver.requests
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert first.body == second.body
    verify(receiver, secret_of(endpoint), 1)
    assert WebhookDelivery.objects.get().status == DeliveryStatus.SUCCEEDED


def test_the_periodic_sweep_recovers_a_lost_send_task(receiver, settings):
    assert "webhooks.tasks.webhook_sweep" in settings.PERIODIC_TASKS
    make_endpoint(receiver.url)
    finish_run(make_run())
    DBTaskResult.objects.filter(task_path__endswith="webhook_delivery_send").delete()  # lost
    with time_machine.travel(timezone.now() + timedelta(minutes=2), tick=True):
        tasks.webhook_sweep.enqueue()
        run_worker()
    assert len(receiver.requests) == 1
    assert WebhookDelivery.objects.get().status == DeliveryStatus.SUCCEEDED


def test_a_rolled_back_transaction_makes_no_event_and_sends_nothing(receiver):
    make_endpoint(receiver.url)
    run = make_run()
    with pytest.raises(RuntimeError), transaction.atomic():
        finish_run(run)
        raise RuntimeError("the request failed after the status change")
    run_worker()
    assert not WebhookEvent.objects.exists()
    assert not WebhookDelivery.objects.exists()
    assert not DBTaskResult.objects.filter(task_path__endswith="webhook_delivery_send").exists()
    assert receiver.requests == []


def test_recording_twice_makes_one_event(receiver):
    make_endpoint(receiver.url)
    run = finish_run(make_run())
    with transaction.atomic():
        assert services.webhook_events_record_for_run(run_finished_event(run)) is None
    run_worker()
    assert WebhookEvent.objects.count() == 1
    assert len(receiver.requests) == 1


def test_a_run_that_is_not_final_records_nothing():
    assert services.webhook_events_record_for_run(run_finished_event(make_run())) is None
    assert not WebhookEvent.objects.exists()


def test_during_rotation_both_secrets_sign_for_24_hours(receiver):
    endpoint = make_endpoint(receiver.url)
    old = secret_of(endpoint)
    new = services.webhook_endpoint_secret_rotate(actor=Actor.system(), endpoint=endpoint)
    assert new != old and new.startswith("whsec_")
    finish_run(make_run())
    run_worker()
    assert len(receiver.requests[0].headers["webhook-signature"].split(" ")) == 2
    verify(receiver, old)
    verify(receiver, new)

    with time_machine.travel(timezone.now() + timedelta(hours=24, minutes=1)):
        services.webhook_endpoint_send_test(actor=Actor.system(), endpoint=endpoint)
        run_worker()
        assert len(receiver.requests[1].headers["webhook-signature"].split(" ")) == 1
        verify(receiver, new, 1)


def test_redelivery_resends_with_the_same_webhook_id(receiver):
    endpoint = make_endpoint(receiver.url)
    finish_run(make_run())
    run_worker()
    delivery = WebhookDelivery.objects.get()
    services.webhook_delivery_redeliver(actor=Actor.system(), delivery=delivery)
    run_worker()
    assert len(receiver.requests) == 2
    assert receiver.requests[0].headers["webhook-id"] == receiver.requests[1].headers["webhook-id"]
    verify(receiver, secret_of(endpoint), 1)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SUCCEEDED
    assert delivery.attempts.count() == 2


def test_a_test_event_reaches_one_endpoint_signed(receiver):
    endpoint = make_endpoint(receiver.url)
    make_endpoint(receiver.url + "/other")
    event = services.webhook_endpoint_send_test(actor=Actor.system(), endpoint=endpoint)
    run_worker()
    assert [r.path for r in receiver.requests] == ["/hooks"]
    payload = verify(receiver, secret_of(endpoint))
    assert payload["type"] == "webhook.test"
    assert payload["data"]["endpointId"] == endpoint.public_id
    assert receiver.requests[0].headers["webhook-id"] == event.public_id


def test_the_host_header_keeps_the_name_while_connecting_to_the_checked_address(
    receiver, monkeypatch
):
    import socket

    real = socket.getaddrinfo
    calls = []

    def fake(host, *args, **kwargs):
        calls.append(host)
        if host == "hooks.example.test":
            return real("127.0.0.1", *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    port = receiver.server.server_address[1]
    make_endpoint(f"http://hooks.example.test:{port}/named")
    finish_run(make_run())
    run_worker()
    assert receiver.requests[0].headers["host"] == f"hooks.example.test:{port}"
    assert calls.count("hooks.example.test") == 2  # at creation and at send, nowhere else


def api_client() -> APIClient:
    """A managed worker's client: an API key of a person with the runner role."""
    runner = User.objects.create_user(f"runner-{time.monotonic_ns()}")
    runner.groups.add(Group.objects.get(name=Role.RUNNER))
    _key, raw = api_key_issue(actor=Actor.system(), user=runner)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def test_a_hanging_receiver_does_not_slow_the_api(receiver):
    make_endpoint(receiver.url)
    receiver.reply(*[Reply(hang_seconds=30)] * 3)
    client = api_client()
    started = time.monotonic()
    for _ in range(3):
        run = make_run()
        response = client.patch(
            f"/api/elt/runs/{run.public_id}", {"status": "succeeded"}, format="json"
        )
        assert response.status_code == 200
    assert time.monotonic() - started < 2
    assert WebhookDelivery.objects.filter(status=DeliveryStatus.PENDING).count() == 3


def test_fifty_concurrent_succeeded_patches_make_one_event(receiver):
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection

    make_endpoint(receiver.url)
    run = make_run()
    client = api_client()
    barrier = threading.Barrier(50)

    def patch(_):
        try:
            barrier.wait(timeout=30)
            return client.patch(
                f"/api/elt/runs/{run.public_id}", {"status": "succeeded"}, format="json"
            ).status_code
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=50) as pool:
        codes = list(pool.map(patch, range(50)))
    assert codes == [200] * 50
    run_worker()
    assert WebhookEvent.objects.filter(run=run).count() == 1
    assert len(receiver.requests) == 1


def test_fifty_unlocked_racers_still_make_one_event(receiver):
    """Even a write path that forgot to lock the run cannot make two events."""
    from django.db import connection

    from runs.models import Run

    if connection.vendor == "sqlite":
        pytest.skip("SQLite has one writer at a time: there is no race to lose")
    make_endpoint(receiver.url)
    run = make_run()
    barrier = threading.Barrier(50)
    errors = []

    def finish() -> None:
        try:
            with transaction.atomic():
                racer = Run.objects.get(pk=run.pk)  # no lock: every racer sees "running"
                barrier.wait(timeout=30)
                racer.status = RunStatus.SUCCEEDED
                racer.finished_at = timezone.now()
                racer.save()
                services.webhook_events_record_for_run(run_finished_event(racer))
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=finish) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    run_worker()
    assert WebhookEvent.objects.filter(run=run).count() == 1
    assert WebhookDelivery.objects.count() == 1
    assert len(receiver.requests) == 1
    assert json.loads(receiver.requests[0].body)["data"]["id"] == run.public_id


def test_an_unexpected_error_is_a_recorded_attempt_not_a_crashed_task(receiver, monkeypatch):
    import httpx

    def explode(*args, **kwargs):
        raise ValueError("something httpx did not expect")

    monkeypatch.setattr(httpx.Client, "stream", explode)
    make_endpoint(receiver.url)
    finish_run(make_run())
    run_worker()
    attempt = WebhookAttempt.objects.get()
    assert attempt.error == "Unexpected error: ValueError."
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == DeliveryStatus.PENDING and delivery.locked_until is None


def test_a_deleted_endpoint_leaves_nothing_to_send(receiver):
    endpoint = make_endpoint(receiver.url)
    finish_run(make_run())
    services.webhook_endpoint_delete(actor=Actor.system(), endpoint=endpoint)
    run_worker()
    assert receiver.requests == []
    assert not DBTaskResult.objects.filter(status="FAILED").exists()


def test_https_connects_to_the_checked_address_with_sni_and_a_verified_certificate(
    receiver, monkeypatch, settings, tmp_path
):
    import shutil
    import socket
    import ssl
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=hooks.example.test", "-addext", "subjectAltName=DNS:hooks.example.test",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server_names = []
    context.sni_callback = lambda sock, name, ctx: server_names.append(name)
    receiver.server.socket = context.wrap_socket(receiver.server.socket, server_side=True)
    settings.WEBHOOK_CA_BUNDLE = str(cert)

    real = socket.getaddrinfo
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda host, *a, **k: real("127.0.0.1" if host == "hooks.example.test" else host, *a, **k),
    )
    port = receiver.server.server_address[1]
    endpoint = make_endpoint(f"https://hooks.example.test:{port}/secure")
    finish_run(make_run())
    run_worker()

    assert server_names == ["hooks.example.test"]
    assert receiver.requests[0].headers["host"] == f"hooks.example.test:{port}"
    verify(receiver, secret_of(endpoint))
    assert WebhookDelivery.objects.get().status == DeliveryStatus.SUCCEEDED


def test_every_checked_address_is_tried_until_one_connects(receiver, monkeypatch):
    import socket

    port = receiver.server.server_address[1]
    real = socket.getaddrinfo

    def resolve(host, *args, **kwargs):
        if host == "hooks.example.test":  # like localhost on many machines: ::1 first
            return [
                (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", port, 0, 0)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
            ]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    make_endpoint(f"http://hooks.example.test:{port}/both")
    finish_run(make_run())
    run_worker()
    assert [r.path for r in receiver.requests] == ["/both"]
    assert WebhookDelivery.objects.get().status == DeliveryStatus.SUCCEEDED
