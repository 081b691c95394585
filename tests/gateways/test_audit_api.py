"""Actions taken through the API leave an audit record naming who, what and from where."""

import pytest
from django.contrib.auth.models import Permission

from common.models import AuditEvent

pytestmark = pytest.mark.django_db


def grant(user, *codenames):
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))


def records():
    """The records of what the test did (issuing the test's own API key is recorded too)."""
    return AuditEvent.objects.exclude(action="api_key.issued")


def test_cancel_through_the_api_is_audited(key_client, user, run):
    grant(user, "cancel_run")
    response = key_client.delete(f"/api/runs/{run.public_id}")
    assert response.status_code == 200
    event = records().get()
    assert (event.action, event.source, event.actor, event.target_id) == (
        "run.cancel_requested",
        "api",
        user,
        run.public_id,
    )


def test_refused_cancel_leaves_no_audit_record(key_client, user, run):
    grant(user, "cancel_run")
    key_client.delete(f"/api/runs/{run.public_id}")
    assert key_client.delete(f"/api/runs/{run.public_id}").status_code == 409
    assert records().count() == 1


def test_trigger_through_the_api_is_audited(key_client, user, pipeline):
    grant(user, "trigger_run")
    response = key_client.post(f"/api/pipelines/{pipeline.public_id}/run", {}, format="json")
    assert response.status_code == 201
    event = records().get()
    assert event.action == "run.created" and event.target_id == response.json()["id"]
    assert event.details == {"trigger": "api"} and event.source == "api"


def test_webhook_endpoint_changes_through_the_api_are_audited(key_client, user, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_URLS = True
    grant(user, "add_webhookendpoint", "change_webhookendpoint", "delete_webhookendpoint")
    created = key_client.post(
        "/api/webhooks",
        {"url": "http://127.0.0.1:9/hook", "events": ["run.failed"]},
        format="json",
    )
    assert created.status_code == 201, created.content
    endpoint_id = created.json()["id"]
    key_client.patch(f"/api/webhooks/{endpoint_id}", {"enabled": False}, format="json")
    key_client.delete(f"/api/webhooks/{endpoint_id}")
    actions = list(records().order_by("id").values_list("action", "target_id"))
    assert actions == [
        ("webhook_endpoint.created", endpoint_id),
        ("webhook_endpoint.changed", endpoint_id),
        ("webhook_endpoint.deleted", endpoint_id),
    ]
    assert created.json()["secret"] not in str(AuditEvent.objects.values_list("details"))
