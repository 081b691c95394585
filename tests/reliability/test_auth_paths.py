"""Every operation of the API, called with every wrong credential, is refused cleanly.

The operations come from the OpenAPI schema the project generates, so a new route is covered as
soon as it exists. Each is called without credentials, with a malformed header, with unknown
secrets, with a revoked key, with a secret of the other kind (a gateway token on the person
routes, an API key on the agent routes), and with a valid method but a wrong scheme. Every answer
must be 401 or 403 with the one JSON error shape (401s name the Bearer scheme), and nothing may
change.
"""

import re

import pytest
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from common.actors import Actor
from gateways.models import ApiKey
from gateways.services import api_key_issue, credential_revoke, gateway_token_issue
from runs.models import LogLine, Run
from tests.factories import GatewayFactory, PipelineFactory, RunFactory, UserFactory

pytestmark = pytest.mark.django_db

BODY = {"status": "running", "appendLog": {"level": "info", "message": "x"}, "name": "x"}


@pytest.fixture
def world(db):
    user = UserFactory(username="auth-paths", is_superuser=True, is_staff=True)
    gateway = GatewayFactory(name="edge-auth")
    pipeline = PipelineFactory(name="auth_pipeline", default_gateway=gateway)
    run = RunFactory(pipeline=pipeline)
    _, token = gateway_token_issue(actor=Actor.system(), gateway=gateway)
    _, key = api_key_issue(actor=Actor.system(), user=user)
    revoked, revoked_raw = api_key_issue(actor=Actor.system(), user=user)
    credential_revoke(actor=Actor.system(), credential=revoked)
    return {
        "token": token,
        "key": key,
        "revoked": revoked_raw,
        "ids": {"run_id": run.public_id, "pipeline_id": pipeline.public_id},
    }


def operations(ids: dict[str, str]) -> list[tuple[str, str]]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    found = []
    for path, methods in schema["paths"].items():
        url = re.sub(r"\{(\w+)\}", lambda m: ids.get(m.group(1), "x_unknown"), path)
        for method in methods:
            if method in {"get", "post", "patch", "put", "delete"}:
                found.append((method.upper(), url))
    return found


def credentials(world, url: str) -> dict[str, str | None]:
    agent = url.startswith("/api/agent/")
    return {
        "none": None,
        "malformed": "Bearer",
        "two parts": "Bearer a b",
        "unknown token": "Bearer gwt_" + "A" * 43,
        "unknown key": "Bearer eltk_" + "A" * 43,
        "revoked key": f"Bearer {world['revoked']}",
        "other kind": f"Bearer {world['key'] if agent else world['token']}",
        "basic": "Basic dXNlcjpwYXNz",
        "non-ascii": "Bearer \u00e9\u00e9",
    }


def state() -> tuple:
    return (
        list(Run.objects.order_by("pk").values_list("pk", "status", "updated_at")),
        LogLine.objects.count(),
        list(ApiKey.objects.order_by("pk").values_list("pk", "revoked_at")),
    )


def test_every_operation_refuses_every_wrong_credential(world):
    ops = operations(world["ids"])
    assert any(url.startswith("/api/agent/") for _, url in ops)
    assert any(url.startswith("/api/elt/") for _, url in ops)
    before = state()
    for method, url in ops:
        for name, header in credentials(world, url).items():
            client = APIClient()
            extra = {"HTTP_AUTHORIZATION": header} if header is not None else {}
            response = client.generic(
                method,
                url,
                data=b'{"status": "running"}' if method in {"POST", "PATCH"} else b"",
                content_type="application/json",
                **extra,
            )
            where = f"{method} {url} with {name}"
            assert response.status_code in (401, 403), (where, response.status_code)
            body = response.json()
            assert body["detail"] and body["code"], where
            if response.status_code == 401:
                assert response["WWW-Authenticate"].startswith("Bearer"), where
    assert state() == before
