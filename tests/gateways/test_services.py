import hashlib
from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from common.actors import Actor
from gateways.models import Gateway, GatewayToken
from gateways.services import (
    credential_revoke,
    gateway_token_issue,
    gateway_token_rotate,
)

pytestmark = pytest.mark.django_db

AGENT_RUNS = "/api/agent/runs"


def client_for(raw: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def gateway_writes(queries) -> list[str]:
    return [
        q["sql"]
        for q in queries
        if q["sql"].startswith("UPDATE")
        and ("gateways_gateway" in q["sql"] or "gateways_gatewaytoken" in q["sql"])
    ]


def test_issued_token_has_a_scannable_prefix_and_only_its_hash_is_stored(gateway):
    token, raw = gateway_token_issue(actor=Actor.system(), gateway=gateway)
    assert raw.startswith("gwt_")
    assert len(raw) - len("gwt_") >= 43  # 32 random bytes, url-safe base64
    stored = GatewayToken.objects.values().get(pk=token.pk)
    assert stored["secret_hash"] == hashlib.sha256(raw.encode()).hexdigest()
    assert all(raw not in str(value) for value in stored.values())
    assert raw.startswith(stored["prefix"]) and len(stored["prefix"]) < len(raw) // 3


def test_last_seen_is_written_at_most_once_per_interval(gateway, gateway_token):
    client = client_for(gateway_token)
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        with CaptureQueriesContext(connection) as first:
            assert client.get(AGENT_RUNS, REMOTE_ADDR="10.0.0.7").status_code == 200
        with CaptureQueriesContext(connection) as burst:
            for _ in range(5):
                assert client.get(AGENT_RUNS, REMOTE_ADDR="10.0.0.7").status_code == 200
    # The first request notes the token's use and the gateway's last sighting; the next five,
    # within the interval, write nothing.
    assert len(gateway_writes(first.captured_queries)) == 2
    assert gateway_writes(burst.captured_queries) == []
    gateway.refresh_from_db()
    assert gateway.last_seen_at == start
    assert gateway.last_seen_ip == "10.0.0.7"

    later_on = time_machine.travel(start + timedelta(seconds=31), tick=False)
    with later_on, CaptureQueriesContext(connection) as later:
        client.get(AGENT_RUNS, REMOTE_ADDR="10.0.0.8")
    assert len(gateway_writes(later.captured_queries)) == 2
    gateway.refresh_from_db()
    assert gateway.last_seen_at == start + timedelta(seconds=31)
    assert gateway.last_seen_ip == "10.0.0.8"
    token = GatewayToken.objects.get(gateway=gateway)
    assert token.last_used_ip == "10.0.0.8"


def test_revoked_token_is_refused_on_the_very_next_request(gateway):
    token, raw = gateway_token_issue(actor=Actor.system(), gateway=gateway)
    client = client_for(raw)
    assert client.get(AGENT_RUNS).status_code == 200
    assert credential_revoke(actor=Actor.system(), credential=token) is True
    response = client.get(AGENT_RUNS)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert (
        credential_revoke(actor=Actor.system(), credential=token) is False
    )  # revoking twice changes nothing


def test_expired_token_is_refused(gateway):
    now = timezone.now()
    _, raw = gateway_token_issue(
        actor=Actor.system(), gateway=gateway, expires_at=now + timedelta(minutes=5)
    )
    client = client_for(raw)
    assert client.get(AGENT_RUNS).status_code == 200
    with time_machine.travel(now + timedelta(minutes=5, seconds=1)):
        assert client.get(AGENT_RUNS).status_code == 401


def test_several_live_tokens_and_rotation_without_downtime(gateway):
    old, old_raw = gateway_token_issue(actor=Actor.system(), gateway=gateway, name="primary")
    now = timezone.now()
    with time_machine.travel(now, tick=False):
        new, new_raw = gateway_token_rotate(
            actor=Actor.system(), token=old, overlap=timedelta(hours=1)
        )
    assert new.gateway == gateway and new.name == "primary" and new_raw != old_raw
    # Both work during the overlap: the gateway can switch without a failed poll.
    assert client_for(old_raw).get(AGENT_RUNS).status_code == 200
    assert client_for(new_raw).get(AGENT_RUNS).status_code == 200
    old.refresh_from_db()
    assert old.expires_at == now + timedelta(hours=1)
    with time_machine.travel(now + timedelta(hours=1, seconds=1)):
        assert client_for(old_raw).get(AGENT_RUNS).status_code == 401
        assert client_for(new_raw).get(AGENT_RUNS).status_code == 200


def test_rotation_with_no_overlap_revokes_the_old_token(gateway):
    old, old_raw = gateway_token_issue(actor=Actor.system(), gateway=gateway)
    _, new_raw = gateway_token_rotate(actor=Actor.system(), token=old, overlap=timedelta(0))
    assert client_for(old_raw).get(AGENT_RUNS).status_code == 401
    assert client_for(new_raw).get(AGENT_RUNS).status_code == 200


def test_rotation_never_extends_an_earlier_expiry(gateway):
    soon = timezone.now() + timedelta(minutes=5)
    old, _ = gateway_token_issue(actor=Actor.system(), gateway=gateway, expires_at=soon)
    gateway_token_rotate(actor=Actor.system(), token=old, overlap=timedelta(days=1))
    old.refresh_from_db()
    assert old.expires_at == soon


def test_token_of_another_gateway_sees_nothing_of_this_one(gateway, run):
    other = Gateway.objects.create(name="edge-2")
    _, raw = gateway_token_issue(actor=Actor.system(), gateway=other)
    assert client_for(raw).get(AGENT_RUNS).json()["data"] == []
    assert client_for(raw).get(f"{AGENT_RUNS}/{run.public_id}").status_code == 404
