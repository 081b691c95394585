"""Every webhook write: endpoints, the outbox, deliveries and their attempts.

Flow: the run write path announces ``common.hooks.run_finished`` inside the transaction that
saves a final status, and ``webhook_events_record_for_run`` (subscribed in ``WebhooksConfig``)
records it. It records one event (a unique constraint on run and type makes repeats and
races harmless) and one pending delivery per matching enabled endpoint, and on commit enqueues a
``webhook_delivery_send`` task per delivery. The task takes a short lease on the delivery, sends,
records the attempt and either finishes the delivery or schedules the next attempt (a task with
``run_after``). The periodic ``webhook_sweep`` re-enqueues deliveries that are overdue with no
live lease: a crash between commit and enqueue, or a worker that died mid-send, ends in a resend
with the same ``webhook-id`` (at-least-once).
"""

import logging
import random
from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from common.actors import Actor
from common.audit import AuditAction, audit_record
from common.errors import InvalidInput
from common.hooks import RunFinished
from common.roles import Perm
from pipelines.models import Pipeline
from runs.models import FINAL_STATUSES
from webhooks import delivery as http_delivery
from webhooks import payloads, signing, ssrf
from webhooks.models import (
    DeliveryStatus,
    EventType,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from webhooks.selectors import webhook_deliveries_due

logger = logging.getLogger(__name__)

EVENT_ALIASES = {"run.cancelled": EventType.RUN_CANCELED}
ENDPOINT_FIELDS = frozenset({"url", "events", "pipeline", "description", "enabled"})


# Endpoints


def webhook_event_types_parse(values: Any) -> list[str]:
    """Validate and normalise an endpoint's event list; ValueError names the problem."""
    if not isinstance(values, list | tuple) or not values:
        raise ValueError(f"Give a non-empty list of events: {', '.join(EventType.values)}.")
    parsed: list[str] = []
    for value in values:
        if not isinstance(value, str):
            raise ValueError("Each event must be a string.")
        value = EVENT_ALIASES.get(value.strip().lower(), value.strip().lower())
        if value not in EventType.values:
            raise ValueError(f"Unknown event '{value}': use {', '.join(EventType.values)}.")
        if value not in parsed:
            parsed.append(value)
    return sorted(parsed)


def webhook_url_check(url: str) -> None:
    """Refuse a URL the sender would refuse (malformed, or not a public address)."""
    if len(url) > 2000:
        raise InvalidInput(errors={"url": ["The URL is longer than 2000 characters."]})
    try:
        ssrf.check_url(url, allow_private=settings.WEBHOOK_ALLOW_PRIVATE_URLS)
    except ssrf.UnsafeUrl as exc:
        raise InvalidInput(errors={"url": [str(exc)]}) from None


@transaction.atomic
def webhook_endpoint_create(
    *,
    actor: Actor,
    url: str,
    events: Iterable[str],
    pipeline: Pipeline | None = None,
    description: str = "",
    enabled: bool = True,
) -> tuple[WebhookEndpoint, str]:
    """Create an endpoint; returns it and its signing secret, which is never shown again."""
    actor.require(Perm.ADD_WEBHOOK_ENDPOINTS, doing="creating a webhook endpoint")
    webhook_url_check(url)
    try:
        event_types = webhook_event_types_parse(list(events))
    except ValueError as exc:
        raise InvalidInput(errors={"events": [str(exc)]}) from None
    endpoint = WebhookEndpoint.objects.create(
        url=url.strip(),
        events=event_types,
        pipeline=pipeline,
        description=description,
        enabled=enabled,
        created_by=actor.stored_user,
    )
    audit_record(
        actor=actor,
        action=AuditAction.WEBHOOK_ENDPOINT_CREATED,
        target=endpoint,
        details={"url": endpoint.url, "events": endpoint.events},
    )
    return endpoint, endpoint.secret


@transaction.atomic
def webhook_endpoint_update(
    *, actor: Actor, endpoint: WebhookEndpoint, changes: dict[str, Any]
) -> WebhookEndpoint:
    actor.require(Perm.CHANGE_WEBHOOK_ENDPOINTS, doing="changing a webhook endpoint")
    unknown = set(changes) - ENDPOINT_FIELDS
    if unknown:
        raise InvalidInput(
            errors={name: ["This field cannot be changed."] for name in sorted(unknown)}
        )
    if "url" in changes:
        webhook_url_check(changes["url"])
        changes["url"] = changes["url"].strip()
    if "events" in changes:
        try:
            changes["events"] = webhook_event_types_parse(changes["events"])
        except ValueError as exc:
            raise InvalidInput(errors={"events": [str(exc)]}) from None
    now = timezone.now()
    if "enabled" in changes and changes["enabled"] != endpoint.enabled:
        if changes["enabled"]:
            endpoint.disabled_at = None
            endpoint.disabled_reason = ""
            endpoint.failing_since = None
        else:
            endpoint.disabled_at = now
            endpoint.disabled_reason = "Disabled by a user."
    for name, value in changes.items():
        setattr(endpoint, name, value)
    endpoint.updated_at = now
    endpoint.save()
    audit_record(
        actor=actor,
        action=AuditAction.WEBHOOK_ENDPOINT_CHANGED,
        target=endpoint,
        details={"fields": sorted(changes)},
    )
    return endpoint


@transaction.atomic
def webhook_endpoint_delete(*, actor: Actor, endpoint: WebhookEndpoint) -> None:
    actor.require(Perm.DELETE_WEBHOOK_ENDPOINTS, doing="deleting a webhook endpoint")
    audit_record(
        actor=actor,
        action=AuditAction.WEBHOOK_ENDPOINT_DELETED,
        target=endpoint,
        details={"url": endpoint.url},
    )
    endpoint.delete()


def webhook_endpoint_secret_rotate(*, actor: Actor, endpoint: WebhookEndpoint) -> str:
    """Issue a new secret; the old one keeps signing beside it for the overlap window."""
    actor.require(Perm.CHANGE_WEBHOOK_ENDPOINTS, doing="rotating a webhook signing secret")
    now = timezone.now()
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        endpoint.previous_secret = endpoint.secret
        endpoint.previous_secret_expires_at = now + timedelta(
            seconds=settings.WEBHOOK_SECRET_ROTATION_OVERLAP_SECONDS
        )
        endpoint.secret = signing.new_signing_secret()
        endpoint.updated_at = now
        endpoint.save(
            update_fields=["previous_secret", "previous_secret_expires_at", "secret", "updated_at"]
        )
        audit_record(
            actor=actor, action=AuditAction.WEBHOOK_ENDPOINT_SECRET_ROTATED, target=endpoint
        )
    return endpoint.secret


def _endpoint_disable(
    *, endpoint_id: int, reason: str, keep_delivery_id: int | None = None
) -> bool:
    """Disable an endpoint and cancel what it still had pending; True if this call disabled it."""
    now = timezone.now()
    disabled = WebhookEndpoint.objects.filter(pk=endpoint_id, enabled=True).update(
        enabled=False, disabled_at=now, disabled_reason=reason[:200], updated_at=now
    )
    if disabled:
        pending = WebhookDelivery.objects.filter(
            endpoint_id=endpoint_id, status=DeliveryStatus.PENDING
        )
        if keep_delivery_id is not None:
            pending = pending.exclude(pk=keep_delivery_id)
        pending.update(
            status=DeliveryStatus.CANCELED,
            completed_at=now,
            next_attempt_at=None,
            last_error="Endpoint disabled.",
        )
        public_id = WebhookEndpoint.objects.filter(pk=endpoint_id).values_list(
            "public_id", flat=True
        )[0]
        logger.warning("webhook endpoint %s disabled: %s", public_id, reason)
    return bool(disabled)


# The outbox


def _enqueue_send(delivery_id: int, run_after: datetime | None = None) -> None:
    from webhooks import tasks

    task = tasks.webhook_delivery_send
    if run_after is not None:
        task = task.using(run_after=run_after)
    task.enqueue(delivery_id=delivery_id)


def _enqueue_on_commit(delivery_ids: Iterable[int], run_after: datetime | None = None) -> None:
    for delivery_id in delivery_ids:
        transaction.on_commit(partial(_enqueue_send, delivery_id, run_after), robust=True)


def _record_event(
    *,
    event_type: str,
    body: str,
    run_pk: int | None,
    endpoints: list[WebhookEndpoint],
    at: datetime,
) -> WebhookEvent:
    event = WebhookEvent.objects.create(type=event_type, run_id=run_pk, body=body, created_at=at)
    deliveries = WebhookDelivery.objects.bulk_create(
        WebhookDelivery(event=event, endpoint=endpoint, next_attempt_at=at, created_at=at)
        for endpoint in endpoints
    )
    _enqueue_on_commit(delivery.pk for delivery in deliveries)
    return event


def webhook_events_record_for_run(event: RunFinished) -> WebhookEvent | None:
    """Record the event for a run that has just entered a final status (the outbox write).

    Subscribed to ``common.hooks.run_finished``, so it runs inside the transaction that saved the
    status. Returns the new event, or None when the run is not final or its event already exists
    (a repeated or raced final status).
    """
    if event.status not in FINAL_STATUSES:
        return None
    event_type = f"run.{event.status}"
    now = timezone.now()
    endpoints = [
        endpoint
        for endpoint in WebhookEndpoint.objects.filter(enabled=True).order_by("id")
        if endpoint.wants(event_type=event_type, pipeline_id=event.pipeline_pk)
    ]
    body = payloads.run_event_body(data=event.data, event_type=event_type, at=now)
    try:
        with transaction.atomic():
            return _record_event(
                event_type=event_type, body=body, run_pk=event.run_pk, endpoints=endpoints, at=now
            )
    except IntegrityError:
        if WebhookEvent.objects.filter(run_id=event.run_pk, type=event_type).exists():
            return None
        raise


def webhook_endpoint_send_test(*, actor: Actor, endpoint: WebhookEndpoint) -> WebhookEvent:
    """Send a ``webhook.test`` event to this endpoint alone (also while it is disabled)."""
    actor.require(Perm.CHANGE_WEBHOOK_ENDPOINTS, doing="sending a test event")
    now = timezone.now()
    body = payloads.test_event_body(endpoint_public_id=endpoint.public_id, at=now)
    with transaction.atomic():
        event = _record_event(
            event_type="webhook.test", body=body, run_pk=None, endpoints=[endpoint], at=now
        )
        audit_record(
            actor=actor,
            action=AuditAction.WEBHOOK_ENDPOINT_TESTED,
            target=endpoint,
            details={"eventId": event.public_id},
        )
    return event


def webhook_delivery_redeliver(*, actor: Actor, delivery: WebhookDelivery) -> None:
    """Send again from a fresh retry schedule, with the same ``webhook-id``."""
    actor.require(Perm.CHANGE_WEBHOOK_ENDPOINTS, doing="redelivering a webhook")
    now = timezone.now()
    with transaction.atomic():
        audit_record(
            actor=actor,
            action=AuditAction.WEBHOOK_REDELIVERED,
            target=delivery.event,
            details={"endpointId": delivery.endpoint.public_id},
        )
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            status=DeliveryStatus.PENDING,
            attempt_count=0,
            next_attempt_at=now,
            completed_at=None,
            locked_until=None,
        )
        _enqueue_on_commit([delivery.pk])


@transaction.atomic
def webhook_event_redeliver(*, actor: Actor, event: WebhookEvent) -> int:
    """Redeliver an event to every endpoint it went to, all of them or none."""
    actor.require(Perm.CHANGE_WEBHOOK_ENDPOINTS, doing="redelivering a webhook")
    deliveries = list(event.deliveries.select_related("event", "endpoint"))
    for item in deliveries:
        webhook_delivery_redeliver(actor=actor, delivery=item)
    return len(deliveries)


# Sending


def webhook_retry_delay(*, attempt_count: int, retry_after: float | None) -> timedelta | None:
    """The wait before the next attempt, after ``attempt_count`` failed ones; None to give up.

    Jitter only ever adds (up to 10%), so no retry comes earlier than the schedule says.
    A ``Retry-After`` from a 429/503 replaces the scheduled wait.
    """
    schedule = settings.WEBHOOK_RETRY_SCHEDULE_SECONDS
    if attempt_count > len(schedule):
        return None
    if retry_after is not None:
        seconds = min(max(retry_after, 1.0), settings.WEBHOOK_RETRY_AFTER_MAX_SECONDS)
        return timedelta(seconds=seconds)
    base = schedule[attempt_count - 1]
    return timedelta(seconds=base + random.uniform(0, base * 0.1))


def _claim(delivery_id: int, now: datetime) -> bool:
    lease = now + timedelta(seconds=settings.WEBHOOK_LEASE_SECONDS)
    return bool(webhook_deliveries_due(now=now).filter(pk=delivery_id).update(locked_until=lease))


def webhook_delivery_attempt(*, delivery_id: int) -> WebhookAttempt | None:
    """Send one attempt of a due delivery, unless it is not due, done, or being sent elsewhere."""
    now = timezone.now()
    if not _claim(delivery_id, now):
        return None
    delivery = (
        WebhookDelivery.objects.select_related("event", "endpoint").filter(pk=delivery_id).first()
    )
    if delivery is None:
        return None
    endpoint, event = delivery.endpoint, delivery.event
    if not endpoint.enabled and event.run_id is not None:
        WebhookDelivery.objects.filter(pk=delivery_id).update(
            status=DeliveryStatus.CANCELED,
            completed_at=now,
            next_attempt_at=None,
            locked_until=None,
            last_error="Endpoint disabled.",
        )
        return None
    body = event.body.encode("utf-8")
    headers = signing.signature_headers(
        secrets_=endpoint.signing_secrets(now),
        msg_id=event.public_id,
        timestamp=int(timezone.now().timestamp()),
        body=body,
    )
    result = http_delivery.post(url=endpoint.url, body=body, headers=headers)
    return _attempt_record(delivery_id=delivery_id, result=result)


def _attempt_record(
    *, delivery_id: int, result: http_delivery.AttemptResult
) -> WebhookAttempt | None:
    now = timezone.now()
    with transaction.atomic():
        delivery = WebhookDelivery.objects.select_for_update().filter(pk=delivery_id).first()
        if delivery is None:
            return None  # its endpoint was deleted while the attempt was in flight
        attempt = WebhookAttempt.objects.create(
            delivery=delivery,
            attempted_at=result.attempted_at,
            succeeded=result.succeeded,
            status_code=result.status_code,
            latency_ms=result.latency_ms,
            response_body=result.response_body,
            error=result.error[:500],
        )
        delivery.attempt_count += 1
        delivery.last_attempt_at = result.attempted_at
        delivery.last_status_code = result.status_code
        delivery.last_error = result.error[:500]
        delivery.locked_until = None
        if delivery.status != DeliveryStatus.PENDING:
            pass  # canceled while in flight: keep the record, schedule nothing
        elif result.succeeded:
            delivery.status = DeliveryStatus.SUCCEEDED
            delivery.completed_at = now
            delivery.next_attempt_at = None
            WebhookEndpoint.objects.filter(
                pk=delivery.endpoint_id, failing_since__isnull=False
            ).update(failing_since=None)
        elif result.status_code == 410:
            delivery.status = DeliveryStatus.FAILED
            delivery.completed_at = now
            delivery.next_attempt_at = None
            _endpoint_disable(
                endpoint_id=delivery.endpoint_id,
                reason="The receiver answered 410 Gone.",
                keep_delivery_id=delivery.pk,
            )
        else:
            delay = webhook_retry_delay(
                attempt_count=delivery.attempt_count, retry_after=result.retry_after_seconds
            )
            if delay is None:
                delivery.status = DeliveryStatus.FAILED
                delivery.completed_at = now
                delivery.next_attempt_at = None
            else:
                delivery.next_attempt_at = now + delay
                _enqueue_on_commit([delivery.pk], run_after=delivery.next_attempt_at)
            _endpoint_note_failure(
                endpoint_id=delivery.endpoint_id, at=result.attempted_at, delivery=delivery
            )
        delivery.save()
    return attempt


def _endpoint_note_failure(*, endpoint_id: int, at: datetime, delivery: WebhookDelivery) -> None:
    WebhookEndpoint.objects.filter(pk=endpoint_id, failing_since__isnull=True).update(
        failing_since=at
    )
    failing_since = WebhookEndpoint.objects.filter(pk=endpoint_id).values_list(
        "failing_since", flat=True
    )[0]
    limit = timedelta(seconds=settings.WEBHOOK_DISABLE_AFTER_FAILING_SECONDS)
    if failing_since is not None and at - failing_since >= limit:
        days = limit.total_seconds() / 86400
        if _endpoint_disable(
            endpoint_id=endpoint_id,
            reason=f"Every attempt failed for {days:g} days.",
            keep_delivery_id=delivery.pk,
        ):
            delivery.status = DeliveryStatus.CANCELED
            delivery.completed_at = timezone.now()
            delivery.next_attempt_at = None


def webhook_deliveries_enqueue_overdue(*, limit: int = 500) -> int:
    """Re-enqueue deliveries that are overdue and not leased: their task was lost or died.

    Each one picked is pushed back to now, so a backlog is re-enqueued at most once per grace
    period; a duplicate task is harmless (the lease lets only one of them send).
    """
    now = timezone.now()
    overdue_before = now - timedelta(seconds=settings.WEBHOOK_SWEEP_GRACE_SECONDS)
    with transaction.atomic():
        ids = list(
            webhook_deliveries_due(now=now, due_by=overdue_before)
            .select_for_update(skip_locked=True)
            .order_by("next_attempt_at")
            .values_list("pk", flat=True)[:limit]
        )
        if ids:
            WebhookDelivery.objects.filter(pk__in=ids).update(next_attempt_at=now)
            for delivery_id in ids:
                transaction.on_commit(partial(_enqueue_send, delivery_id), robust=True)
    if ids:
        logger.info("webhook sweep re-enqueued %d overdue deliveries", len(ids))
    return len(ids)
