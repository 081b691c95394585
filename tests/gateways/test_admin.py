import re
from datetime import timedelta

import pytest
from django.apps import apps
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.contrib.sessions.models import Session
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from common.actors import Actor, Source
from common.models import AuditEvent
from gateways.models import ApiKey, GatewayToken
from gateways.services import (
    api_key_authenticate,
    api_key_issue,
    credential_revoke,
    gateway_token_issue,
)
from runs.models import RunStatus
from tests.factories import GatewayFactory, PipelineFactory, RunFactory, UserFactory

pytestmark = pytest.mark.django_db

TOKEN_RE = re.compile(r"gwt_[A-Za-z0-9_-]{43}")
KEY_RE = re.compile(r"eltk_[A-Za-z0-9_-]{43}")
TOKEN_ADD = "/admin/gateways/gatewaytoken/add/"


def plain_user(username: str, **fields):
    """A user without a password: hashing one per user would dominate these tests' time."""
    return get_user_model().objects.create(username=username, **fields)


def admin_actor(username: str) -> Actor:
    """An admin acting in Django admin (a superuser: every permission)."""
    return Actor.of_user(
        plain_user(username, is_staff=True, is_superuser=True), source=Source.ADMIN
    )


def agent_status(raw: str) -> int:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client.get("/api/agent/runs").status_code


def assert_stored_nowhere(raw: str) -> None:
    """No row of any table holds the plaintext or its random part (sessions decoded too)."""
    secret_part = raw.split("_", 1)[1]
    for model in apps.get_models():
        for row in model.objects.values():
            assert secret_part not in repr(row), f"plaintext found in {model.__name__}"
    for session in Session.objects.all():
        assert secret_part not in repr(session.get_decoded())


def shown_after_redirect(admin_client, response, pattern: re.Pattern) -> tuple[str, object]:
    """The secret on the page an issuing POST redirects to (its only appearance)."""
    assert response.status_code == 302, response.content[:500]
    assert pattern.search(response.content.decode()) is None
    page = admin_client.get(response["Location"])
    assert page.status_code == 200, page.content[:500]
    shown = pattern.findall(page.content.decode())
    assert len(shown) == 1
    return shown[0], page


def issue_via_admin(admin_client, gateway, **extra) -> tuple[str, object]:
    data = {"gateway": gateway.pk, "name": "primary", "expires_at_0": "", "expires_at_1": ""}
    response = admin_client.post(TOKEN_ADD, {**data, **extra})
    return shown_after_redirect(admin_client, response, TOKEN_RE)


def database_text() -> str:
    """Every row of every table, sessions decoded too, as one text to search."""
    rows = [repr(row) for model in apps.get_models() for row in model.objects.values()]
    rows += [repr(session.get_decoded()) for session in Session.objects.all()]
    return "\n".join(rows)


def test_gateway_page_links_to_issuing_a_token(admin_client, gateway):
    page = admin_client.get(f"/admin/gateways/gateway/{gateway.pk}/change/")
    assert page.status_code == 200
    assert f'{TOKEN_ADD}?gateway={gateway.pk}"' in page.content.decode()
    form = admin_client.get(f"{TOKEN_ADD}?gateway={gateway.pk}")
    assert form.status_code == 200
    assert "_addanother" not in form.content.decode()


def test_issuing_shows_the_plaintext_exactly_once_and_stores_only_a_hash(
    admin_client, admin_user, gateway
):
    raw, response = issue_via_admin(admin_client, gateway)
    assert "no-store" in response["Cache-Control"]
    assert "messages" not in response.cookies
    token = GatewayToken.objects.get(gateway=gateway)
    # The page names the token it issued, not only its prefix.
    assert f"primary ({token.prefix}…)" in response.content.decode()
    assert "back to primary</a>" in response.content.decode()
    assert f"Gateway token “primary” for {token.prefix}…" in response.content.decode()
    assert raw.startswith(token.prefix)
    assert token.created_by == admin_user and token.name == "primary"
    assert agent_status(raw) == 200

    # Every later page shows the prefix, never the token.
    for url in [
        f"/admin/gateways/gatewaytoken/{token.pk}/change/",
        "/admin/gateways/gatewaytoken/",
        f"/admin/gateways/gateway/{gateway.pk}/change/",
        "/admin/common/auditevent/",
        "/admin/",
    ]:
        page = admin_client.get(url)
        assert page.status_code == 200, url
        assert raw not in page.content.decode(), url
    assert token.prefix in admin_client.get("/admin/gateways/gatewaytoken/").content.decode()
    assert_stored_nowhere(raw)

    event = AuditEvent.objects.get(action="gateway_token.issued")
    assert event.actor == admin_user and event.source == "admin"
    assert event.details == {"prefix": token.prefix, "name": "primary"}
    assert LogEntry.objects.filter(object_id=str(token.pk), action_flag=ADDITION).exists()


def test_the_issued_page_is_a_redirect_shown_once_and_the_secret_rests_nowhere(
    admin_client, gateway
):
    data = {"gateway": gateway.pk, "name": "primary", "expires_at_0": "", "expires_at_1": ""}
    posted = admin_client.post(TOKEN_ADD, data)
    token = GatewayToken.objects.get(gateway=gateway)
    issued_url = f"/admin/gateways/gatewaytoken/{token.pk}/issued/"
    assert posted.status_code == 302 and posted["Location"] == issued_url
    pad = posted.cookies["issued_pad"]
    assert pad["path"] == issued_url and pad["httponly"] and pad["samesite"] == "Strict"
    assert int(pad["max-age"]) <= 300
    # Between the redirect and the page, the database (the session too) holds only half.
    waiting = database_text()

    raw, page = shown_after_redirect(admin_client, posted, TOKEN_RE)
    assert raw.split("_", 1)[1] not in waiting
    assert raw not in pad.value and raw not in issued_url
    assert page.cookies["issued_pad"].value == ""  # the pad is dropped with the first view
    assert_stored_nowhere(raw)

    # A reload neither issues another token nor shows the secret again.
    again = admin_client.get(issued_url, follow=True)
    assert again.redirect_chain == [(f"/admin/gateways/gatewaytoken/{token.pk}/change/", 302)]
    assert raw not in again.content.decode()
    assert "was shown once and cannot be shown again" in again.content.decode()
    assert GatewayToken.objects.filter(gateway=gateway).count() == 1


def test_the_issued_page_shows_nothing_without_both_halves(admin_client, client, gateway):
    data = {"gateway": gateway.pk, "name": "primary", "expires_at_0": "", "expires_at_1": ""}
    posted = admin_client.post(TOKEN_ADD, data)
    issued_url = posted["Location"]
    # The session's half without the cookie's (the pad lost, or a forged one) shows nothing.
    admin_client.cookies["issued_pad"] = "00" * 47
    assert TOKEN_RE.search(admin_client.get(issued_url, follow=True).content.decode()) is None
    # And another staff member's session never had it.
    other = plain_user("other-admin", is_staff=True, is_superuser=True)
    client.force_login(other)
    client.cookies["issued_pad"] = posted.cookies["issued_pad"].value
    assert TOKEN_RE.search(client.get(issued_url, follow=True).content.decode()) is None


def test_token_issued_with_an_expiry_stops_working_then(admin_client, gateway):
    later = timezone.now() + timedelta(days=30)
    raw, _ = issue_via_admin(
        admin_client,
        gateway,
        expires_at_0=later.strftime("%Y-%m-%d"),
        expires_at_1=later.strftime("%H:%M:%S"),
    )
    token = GatewayToken.objects.get(gateway=gateway)
    assert token.expires_at == later.replace(microsecond=0)
    GatewayToken.objects.filter(pk=token.pk).update(expires_at=timezone.now())
    assert agent_status(raw) == 401


def test_revoke_button_refuses_the_token_on_the_next_request(admin_client, admin_user, gateway):
    token, raw = gateway_token_issue(actor=Actor.system(), gateway=gateway)
    assert agent_status(raw) == 200
    change = admin_client.get(f"/admin/gateways/gatewaytoken/{token.pk}/change/").content
    assert f"/admin/gateways/gatewaytoken/{token.pk}/revoke/" in change.decode()
    confirm = admin_client.get(f"/admin/gateways/gatewaytoken/{token.pk}/revoke/")
    assert confirm.status_code == 200 and b"Yes, revoke" in confirm.content
    assert agent_status(raw) == 200  # a GET changes nothing

    response = admin_client.post(f"/admin/gateways/gatewaytoken/{token.pk}/revoke/")
    assert response.status_code == 302
    assert agent_status(raw) == 401
    token.refresh_from_db()
    assert token.revoked_at is not None
    event = AuditEvent.objects.get(action="gateway_token.revoked")
    assert event.actor == admin_user and event.target_id == str(token.pk)
    assert LogEntry.objects.filter(object_id=str(token.pk), action_flag=CHANGE).exists()
    # No revoke or rotate buttons on a revoked token.
    change = admin_client.get(f"/admin/gateways/gatewaytoken/{token.pk}/change/").content
    assert b"/revoke/" not in change and b"/rotate/" not in change


def test_revoke_action_on_the_token_list(admin_client, gateway):
    tokens = [gateway_token_issue(actor=Actor.system(), gateway=gateway) for _ in range(3)]
    keep_token = tokens[2][0]
    response = admin_client.post(
        "/admin/gateways/gatewaytoken/",
        {
            "action": "revoke_selected",
            "_selected_action": [tokens[0][0].pk, tokens[1][0].pk],
        },
    )
    assert response.status_code == 302
    assert [agent_status(raw) for _, raw in tokens] == [401, 401, 200]
    assert AuditEvent.objects.filter(action="gateway_token.revoked").count() == 2
    revoked = AuditEvent.objects.filter(action="gateway_token.revoked")
    assert str(keep_token.pk) not in revoked.values_list("target_id", flat=True)


def test_rotate_issues_a_replacement_and_keeps_the_old_token_for_the_overlap(
    admin_client, admin_user, gateway
):
    old, old_raw = gateway_token_issue(actor=Actor.system(), gateway=gateway, name="primary")
    form = admin_client.get(f"/admin/gateways/gatewaytoken/{old.pk}/rotate/")
    assert form.status_code == 200 and b"Old token stays valid for" in form.content

    response = admin_client.post(
        f"/admin/gateways/gatewaytoken/{old.pk}/rotate/", {"overlap": "3600"}
    )
    new_raw, page = shown_after_redirect(admin_client, response, TOKEN_RE)
    assert new_raw != old_raw
    assert "no-store" in page["Cache-Control"]
    assert "stops working at" in page.content.decode()
    assert agent_status(new_raw) == 200
    assert agent_status(old_raw) == 200  # both live: no downtime while the gateway switches
    old.refresh_from_db()
    assert old.revoked_at is None
    assert timedelta(minutes=59) < old.expires_at - timezone.now() <= timedelta(hours=1)
    new = GatewayToken.objects.exclude(pk=old.pk).get()
    assert new.name == "primary" and new.created_by == admin_user
    event = AuditEvent.objects.get(action="gateway_token.rotated")
    assert event.details["replacement"] == new.prefix
    assert_stored_nowhere(new_raw)

    # Then the operator revokes the old one once the gateway uses the new one.
    admin_client.post(f"/admin/gateways/gatewaytoken/{old.pk}/revoke/")
    assert agent_status(old_raw) == 401
    assert agent_status(new_raw) == 200


def test_rotate_with_no_overlap_revokes_at_once(admin_client, gateway):
    old, old_raw = gateway_token_issue(actor=Actor.system(), gateway=gateway)
    response = admin_client.post(f"/admin/gateways/gatewaytoken/{old.pk}/rotate/", {"overlap": "0"})
    new_raw, page = shown_after_redirect(admin_client, response, TOKEN_RE)
    assert "is revoked" in page.content.decode()
    assert agent_status(old_raw) == 401
    assert agent_status(new_raw) == 200


def test_tokens_cannot_be_deleted_only_revoked(admin_client, gateway):
    token, _ = gateway_token_issue(actor=Actor.system(), gateway=gateway)
    response = admin_client.get(f"/admin/gateways/gatewaytoken/{token.pk}/delete/")
    assert response.status_code == 403


def test_staff_without_change_permission_cannot_revoke(client, gateway):
    token, raw = gateway_token_issue(actor=Actor.system(), gateway=gateway)
    viewer = UserFactory(username="viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_gatewaytoken"))
    client.force_login(viewer)
    assert client.post(f"/admin/gateways/gatewaytoken/{token.pk}/revoke/").status_code == 403
    assert client.post(f"/admin/gateways/gatewaytoken/{token.pk}/rotate/").status_code == 403
    assert agent_status(raw) == 200


def test_api_key_issued_in_admin_is_shown_once(admin_client, admin_user):
    owner = plain_user("ci-bot")
    response = admin_client.post(
        "/admin/gateways/apikey/add/",
        {"user": owner.pk, "name": "ci", "expires_at_0": "", "expires_at_1": ""},
    )
    raw, _ = shown_after_redirect(admin_client, response, KEY_RE)
    key = ApiKey.objects.get(user=owner)
    assert key.created_by == admin_user
    assert api_key_authenticate(raw=raw) == key
    assert raw not in admin_client.get("/admin/gateways/apikey/").content.decode()
    assert_stored_nowhere(raw)
    assert AuditEvent.objects.filter(action="api_key.issued", target_id=str(key.pk)).exists()

    admin_client.post(f"/admin/gateways/apikey/{key.pk}/revoke/")
    assert api_key_authenticate(raw=raw) is None
    assert AuditEvent.objects.filter(action="api_key.revoked").count() == 1


def test_gateway_list_shows_health_and_run_counts(admin_client):
    now = timezone.now()
    online = GatewayFactory(name="edge-online", last_seen_at=now)
    GatewayFactory(name="edge-new")
    pipeline = PipelineFactory(default_gateway=online)
    RunFactory(pipeline=pipeline, status=RunStatus.RUNNING)
    RunFactory(pipeline=pipeline, status=RunStatus.QUEUED)
    html = admin_client.get("/admin/gateways/gateway/").content.decode()
    row = html.split(">edge-online</a>")[1].split("</tr>")[0]
    assert '<td class="field-health">online</td>' in row
    assert '<td class="field-running">1</td>' in row
    assert '<td class="field-queued">1</td>' in row
    assert "never connected" in html


def changelist_queries(admin_client, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert admin_client.get(url).status_code == 200
    return len(ctx.captured_queries)


def add_gateways_with_tokens_and_runs(count: int, offset: int) -> None:
    for index in range(offset, offset + count):
        creator = admin_actor(f"issuer-{index}")
        gateway = GatewayFactory(name=f"gw-{index}")
        gateway_token_issue(actor=creator, gateway=gateway)
        api_key_issue(actor=creator, user=plain_user(f"owner-{index}"))
        RunFactory(pipeline=PipelineFactory(default_gateway=gateway), status=RunStatus.QUEUED)


@pytest.mark.parametrize(
    "url",
    [
        "/admin/gateways/gateway/",
        "/admin/gateways/gatewaytoken/",
        "/admin/gateways/apikey/",
        "/admin/pipelines/pipeline/",
        "/admin/common/auditevent/",
    ],
)
def test_changelist_query_count_is_constant(admin_client, url):
    add_gateways_with_tokens_and_runs(2, 0)
    few = changelist_queries(admin_client, url)
    add_gateways_with_tokens_and_runs(12, 2)
    assert changelist_queries(admin_client, url) == few


def test_gateway_change_page_query_count_does_not_grow_with_tokens(admin_client, gateway):
    gateway_token_issue(actor=admin_actor("a"), gateway=gateway)
    url = f"/admin/gateways/gateway/{gateway.pk}/change/"
    changelist_queries(admin_client, url)  # warm the process's caches (content types)
    few = changelist_queries(admin_client, url)
    for index in range(8):
        gateway_token_issue(actor=admin_actor(f"u{index}"), gateway=gateway)
    assert changelist_queries(admin_client, url) == few


def test_audit_list_filters_by_action_and_searches_by_target(admin_client, gateway):
    token, _ = gateway_token_issue(actor=Actor.system(), gateway=gateway)
    credential_revoke(actor=Actor.system(), credential=token)
    html = admin_client.get("/admin/common/auditevent/?action=gateway_token.revoked").content
    assert html.decode().count('class="field-action"') == 1
    html = admin_client.get("/admin/common/auditevent/", {"q": str(token.pk)}).content
    assert html.decode().count('class="field-action"') == 2
    assert admin_client.get("/admin/common/auditevent/add/").status_code == 403


@pytest.mark.parametrize("action", ["revoke", "rotate"])
def test_unknown_token_answers_404(admin_client, action):
    assert admin_client.get(f"/admin/gateways/gatewaytoken/999999/{action}/").status_code == 404
    assert admin_client.get(f"/admin/gateways/gatewaytoken/abc/{action}/").status_code == 404
