import pytest
from django.contrib.auth.models import User
from django.contrib.messages import get_messages

from common.models import AuditEvent
from webhooks import services
from webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint, WebhookEvent

from .conftest import finish_run, make_endpoint, make_run

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client):
    client.force_login(User.objects.create_superuser("root", "root@example.com", None))
    return client


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def test_adding_an_endpoint_shows_its_secret_once(staff):
    response = staff.post(
        "/admin/webhooks/webhookendpoint/add/",
        {
            "url": "http://127.0.0.1:9/in",
            "events": ["run.failed", "run.succeeded"],
            "enabled": "on",
        },
    )
    assert response.status_code == 302, response.content
    endpoint = WebhookEndpoint.objects.get()
    assert endpoint.events == ["run.failed", "run.succeeded"]
    assert any(endpoint.secret in message for message in messages_of(response))

    shown_once = staff.get("/admin/webhooks/webhookendpoint/").content.decode()
    assert endpoint.secret in shown_once  # the page the add redirects to
    page = staff.get(f"/admin/webhooks/webhookendpoint/{endpoint.pk}/change/").content.decode()
    assert endpoint.secret not in page
    assert endpoint.secret[:10] in page
    listing = staff.get("/admin/webhooks/webhookendpoint/").content.decode()
    assert endpoint.secret not in listing


def test_the_admin_refuses_private_urls(staff, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_URLS = False
    response = staff.post(
        "/admin/webhooks/webhookendpoint/add/",
        {"url": "http://169.254.169.254/", "events": ["run.failed"], "enabled": "on"},
    )
    assert response.status_code == 200
    assert "metadata" in response.content.decode()
    assert not WebhookEndpoint.objects.exists()


def test_rotate_and_test_actions(staff):
    endpoint = make_endpoint("http://127.0.0.1:9/in")
    old = endpoint.secret
    response = staff.post(
        "/admin/webhooks/webhookendpoint/",
        {"action": "rotate_secret", "_selected_action": [endpoint.pk]},
    )
    endpoint.refresh_from_db()
    assert endpoint.secret != old and endpoint.previous_secret == old
    assert any(endpoint.secret in message for message in messages_of(response))

    staff.post(
        "/admin/webhooks/webhookendpoint/",
        {"action": "send_test_event", "_selected_action": [endpoint.pk]},
    )
    assert WebhookEvent.objects.get().type == "webhook.test"


def test_an_automatically_disabled_endpoint_is_announced(staff):
    endpoint = make_endpoint("http://127.0.0.1:9/in")
    services._endpoint_disable(endpoint_id=endpoint.pk, reason="Every attempt failed for 5 days.")
    response = staff.get("/admin/webhooks/webhookendpoint/")
    assert any(
        endpoint.public_id in message and "5 days" in message for message in messages_of(response)
    )


def test_deliveries_show_attempts_and_can_be_redelivered(staff, django_capture_on_commit_callbacks):
    endpoint = make_endpoint("http://127.0.0.1:9/in")
    finish_run(make_run())
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    delivery.attempts.create(attempted_at=delivery.created_at, status_code=500, error="HTTP 500.")
    WebhookDelivery.objects.filter(pk=delivery.pk).update(status=DeliveryStatus.FAILED)

    page = staff.get(f"/admin/webhooks/webhookdelivery/{delivery.pk}/change/").content.decode()
    assert "HTTP 500." in page

    with django_capture_on_commit_callbacks(execute=True):
        staff.post(
            "/admin/webhooks/webhookdelivery/",
            {"action": "redeliver", "_selected_action": [delivery.pk]},
        )
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING and delivery.attempt_count == 0

    event_page = staff.get(f"/admin/webhooks/webhookevent/{delivery.event.pk}/change/")
    assert event_page.status_code == 200


def test_enabling_again_in_admin_clears_the_disabled_reason(staff):
    endpoint = make_endpoint("http://127.0.0.1:9/in", events=["run.failed"])
    services._endpoint_disable(endpoint_id=endpoint.pk, reason="The receiver answered 410 Gone.")
    response = staff.post(
        f"/admin/webhooks/webhookendpoint/{endpoint.pk}/change/",
        {"url": endpoint.url, "events": ["run.failed"], "enabled": "on", "description": ""},
    )
    assert response.status_code == 302, response.content
    endpoint.refresh_from_db()
    assert endpoint.enabled and endpoint.disabled_reason == "" and endpoint.disabled_at is None


def test_endpoint_changes_in_admin_are_recorded_like_the_apis(staff):
    staff.post(
        "/admin/webhooks/webhookendpoint/add/",
        {"url": "http://127.0.0.1:9/in", "events": ["run.failed"], "enabled": "on"},
    )
    endpoint = WebhookEndpoint.objects.get()
    staff.post(
        f"/admin/webhooks/webhookendpoint/{endpoint.pk}/change/",
        {"url": "http://127.0.0.1:9/other", "events": ["run.failed"], "enabled": "on"},
    )
    staff.post(f"/admin/webhooks/webhookendpoint/{endpoint.pk}/delete/", {"post": "yes"})

    assert not WebhookEndpoint.objects.exists()
    records = AuditEvent.objects.filter(target_id=endpoint.public_id).order_by("id")
    assert [(event.action, event.source, event.actor_label) for event in records] == [
        ("webhook_endpoint.created", "admin", "root"),
        ("webhook_endpoint.changed", "admin", "root"),
        ("webhook_endpoint.deleted", "admin", "root"),
    ]
    assert records[1].details == {"fields": ["url"]}
