import pytest
from django.contrib.auth.models import Group, Permission, User
from rest_framework.test import APIClient

from common.actors import Actor
from common.roles import Role
from gateways.services import api_key_issue, gateway_token_issue
from webhooks.models import WebhookEndpoint, WebhookEvent

from .conftest import make_endpoint, make_gateway, make_pipeline

pytestmark = pytest.mark.django_db

LIST = "/api/webhooks"


def detail(endpoint_id: str) -> str:
    return f"/api/webhooks/{endpoint_id}"


def client_for(user: User) -> APIClient:
    _key, raw = api_key_issue(actor=Actor.system(), user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


@pytest.fixture
def writer_client() -> APIClient:
    user = User.objects.create_user("admin")
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="webhooks", codename__endswith="webhookendpoint"
        )
    )
    return client_for(user)


def viewer(username: str) -> User:
    user = User.objects.create_user(username)
    user.groups.add(Group.objects.get(name=Role.VIEWER))
    return user


@pytest.fixture
def reader_client() -> APIClient:
    return client_for(viewer("reader"))


def create(client, **body):
    body.setdefault("url", "http://127.0.0.1:9/hooks")
    body.setdefault("events", ["run.succeeded"])
    return client.post(LIST, body, format="json")


def test_create_answers_the_secret_once(writer_client):
    pipeline = make_pipeline()
    response = create(
        writer_client,
        events=["run.failed", "run.cancelled", "run.failed"],
        pipelineId=pipeline.public_id,
        description="pager",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["id"].startswith("whe_")
    assert body["secret"].startswith("whsec_")
    assert body["secretPrefix"] == body["secret"][:10] + "…"
    assert body["events"] == ["run.canceled", "run.failed"]
    assert body["pipelineId"] == pipeline.public_id
    assert body["enabled"] is True
    assert body["createdAt"].endswith("Z")

    endpoint = WebhookEndpoint.objects.get(public_id=body["id"])
    assert endpoint.secret == body["secret"]
    for response in (writer_client.get(LIST), writer_client.get(detail(body["id"]))):
        assert response.status_code == 200
        assert body["secret"] not in response.content.decode()
        assert "secret" not in (response.json().get("data") or [response.json()])[0]


def test_list_and_get_for_a_viewer(reader_client):
    endpoint = make_endpoint("http://127.0.0.1:9/a")
    response = reader_client.get(LIST)
    assert response.status_code == 200
    assert [item["id"] for item in response.json()["data"]] == [endpoint.public_id]
    assert reader_client.get(detail(endpoint.public_id)).json()["url"] == "http://127.0.0.1:9/a"


def test_session_sign_in_works_and_reading_needs_the_viewer_role(client):
    client.force_login(User.objects.create_user("nobody"))
    refused = client.get(LIST)
    assert refused.status_code == 403 and refused.json()["role"] == "viewer"
    client.force_login(viewer("session"))
    assert client.get(LIST).status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://example.com/"}, "url"),
        ({"url": ""}, "url"),
        ({"url": "x" * 2001}, "url"),
        ({"events": []}, "events"),
        ({"events": ["run.started"]}, "events"),
        ({"events": "run.failed"}, "events"),
        ({"events": [1]}, "events"),
        ({"pipelineId": "pl_nope"}, "pipelineId"),
        ({"enabled": "maybe"}, "enabled"),
        ({"secret": "whsec_mine"}, "secret"),
    ],
)
def test_bad_input_is_a_400_naming_the_field_and_creates_nothing(writer_client, body, field):
    response = create(writer_client, **body)
    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert response.json()["code"] == "invalid"
    assert not WebhookEndpoint.objects.exists()


def test_a_missing_url_is_named(writer_client):
    response = writer_client.post(LIST, {"events": ["run.failed"]}, format="json")
    assert response.status_code == 400
    assert "url" in response.json()["errors"]


def test_a_body_that_is_not_an_object_is_a_400(writer_client):
    for raw in (b"[1,2]", b"not json", b""):
        response = writer_client.post(LIST, raw, content_type="application/json")
        assert response.status_code == 400, raw


def test_private_urls_are_refused_unless_allowed(writer_client, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_URLS = False
    for url in ("http://127.0.0.1/x", "http://169.254.169.254/", "http://2130706433/"):
        response = create(writer_client, url=url)
        assert response.status_code == 400
        assert "url" in response.json()["errors"]
    assert not WebhookEndpoint.objects.exists()
    response = writer_client.patch(
        detail(make_endpoint("http://93.184.215.14/").public_id),
        {"url": "http://[::1]/"},
        format="json",
    )
    assert response.status_code == 400
    assert WebhookEndpoint.objects.get().url == "http://93.184.215.14/"


def test_patch_changes_only_what_is_sent(writer_client):
    endpoint = make_endpoint("http://127.0.0.1:9/a", events=["run.failed"])
    response = writer_client.patch(
        detail(endpoint.public_id),
        {"events": ["run.succeeded"], "description": "new", "pipelineId": None},
        format="json",
    )
    assert response.status_code == 200, response.json()
    assert response.json()["events"] == ["run.succeeded"]
    assert response.json()["url"] == "http://127.0.0.1:9/a"
    assert "secret" not in response.json()


def test_patch_refuses_bad_input_and_changes_nothing(writer_client):
    endpoint = make_endpoint("http://127.0.0.1:9/a", events=["run.failed"])
    response = writer_client.patch(
        detail(endpoint.public_id), {"events": ["nope"], "description": "x"}, format="json"
    )
    assert response.status_code == 400
    assert "events" in response.json()["errors"]
    endpoint.refresh_from_db()
    assert endpoint.events == ["run.failed"] and endpoint.description == ""


def test_enabling_again_clears_the_reason(writer_client):
    endpoint = make_endpoint("http://127.0.0.1:9/a")
    response = writer_client.patch(detail(endpoint.public_id), {"enabled": False}, format="json")
    assert response.json()["enabled"] is False
    assert response.json()["disabledReason"] == "Disabled by a user."
    response = writer_client.patch(detail(endpoint.public_id), {"enabled": True}, format="json")
    assert response.json()["enabled"] is True
    assert response.json()["disabledReason"] == ""
    assert response.json()["disabledAt"] is None


def test_delete(writer_client):
    endpoint = make_endpoint("http://127.0.0.1:9/a")
    assert writer_client.delete(detail(endpoint.public_id)).status_code == 204
    assert not WebhookEndpoint.objects.exists()
    assert writer_client.delete(detail(endpoint.public_id)).status_code == 404


def test_unknown_ids_are_404(writer_client):
    for method in ("get", "patch", "delete"):
        response = getattr(writer_client, method)(detail("whe_nope"), {}, format="json")
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"
    assert writer_client.post(detail("whe_nope") + "/rotate-secret").status_code == 404


def test_rotate_answers_the_new_secret_once(writer_client):
    endpoint = make_endpoint("http://127.0.0.1:9/a")
    old = endpoint.secret
    response = writer_client.post(detail(endpoint.public_id) + "/rotate-secret")
    assert response.status_code == 200
    new = response.json()["secret"]
    assert new.startswith("whsec_") and new != old
    assert response.json()["previousSecretExpiresAt"].endswith("Z")
    endpoint.refresh_from_db()
    assert endpoint.signing_secrets() == [new, old]


def test_send_test_queues_a_test_event(writer_client):
    endpoint = make_endpoint("http://127.0.0.1:9/a")
    response = writer_client.post(detail(endpoint.public_id) + "/test")
    assert response.status_code == 202
    event = WebhookEvent.objects.get(public_id=response.json()["eventId"])
    assert event.type == "webhook.test"


def test_writes_need_model_permissions(reader_client):
    endpoint = make_endpoint("http://127.0.0.1:9/a")
    assert create(reader_client).status_code == 403
    assert (
        reader_client.patch(
            detail(endpoint.public_id), {"enabled": False}, format="json"
        ).status_code
        == 403
    )
    assert reader_client.delete(detail(endpoint.public_id)).status_code == 403
    assert reader_client.post(detail(endpoint.public_id) + "/rotate-secret").status_code == 403
    endpoint.refresh_from_db()
    assert endpoint.enabled


def test_anonymous_callers_get_401():
    response = APIClient().get(LIST)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_gateway_tokens_are_refused():
    _token, raw = gateway_token_issue(actor=Actor.system(), gateway=make_gateway())
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert client.get(LIST).status_code in (401, 403)


def test_the_schema_describes_the_webhook_api(writer_client):
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    paths = schema["paths"]
    assert {"get", "post"} <= set(paths["/api/webhooks"])
    assert {"get", "patch", "delete"} <= set(paths["/api/webhooks/{id}"])
    created = paths["/api/webhooks"]["post"]["responses"]["201"]
    assert "WebhookEndpointWithSecretOutput" in str(created)


@pytest.mark.django_db
def test_signing_secrets_are_encrypted_at_rest(settings):
    from django.db import connection

    from webhooks.models import WebhookEndpoint

    settings.WEBHOOK_ALLOW_PRIVATE_URLS = True
    endpoint = WebhookEndpoint.objects.create(url="http://127.0.0.1:9/x", events=["run.failed"])
    plaintext = WebhookEndpoint.objects.get(pk=endpoint.pk).secret
    assert plaintext.startswith("whsec_")
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM webhooks_webhookendpoint WHERE id = %s", [endpoint.pk])
        (stored,) = cursor.fetchone()
    assert stored.startswith("enc1:") and plaintext not in stored
    assert plaintext[len("whsec_") :] not in stored


@pytest.mark.django_db
@pytest.mark.parametrize("endpoint_id", ["%00", "whe_" + "x" * 300])
def test_ids_that_cannot_exist_are_404(key_client, endpoint_id):
    response = key_client.get(f"/api/webhooks/{endpoint_id}")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
