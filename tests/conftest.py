import pytest
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from common.actors import Actor
from common.roles import Role
from gateways.services import api_key_issue, gateway_token_issue
from tests.factories import GatewayFactory, PipelineFactory, RunFactory, UserFactory


@pytest.fixture(scope="session")
def shared_state_dir(tmp_path_factory):
    """The fallback shared store (rate-limit files, file cache), one per test process."""
    return tmp_path_factory.mktemp("shared-state")


@pytest.fixture(autouse=True)
def isolated_shared_state(settings, shared_state_dir):
    """The production fallback store, in a directory no other test process or checkout uses."""
    settings.SHARED_STATE_DIR = shared_state_dir
    settings.THROTTLE_STORE = "file"
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": shared_state_dir / "cache",
        }
    }


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def user(db):
    """A person who reads runs and reports on them: the viewer and runner roles."""
    ana = UserFactory(username="ana")
    ana.groups.add(*Group.objects.filter(name__in=[Role.VIEWER, Role.RUNNER]))
    return ana


def person_with_role(username: str, role: str):
    person = UserFactory(username=username)
    person.groups.add(Group.objects.get(name=role))
    return person


@pytest.fixture
def analyst(db):
    """A person who reads the pages (the viewer role)."""
    return person_with_role("analyst", Role.VIEWER)


@pytest.fixture
def operator(db):
    """A person who also cancels, triggers and re-runs (the operator role)."""
    return person_with_role("operator", Role.OPERATOR)


@pytest.fixture
def analyst_client(client, analyst):
    client.force_login(analyst)
    return client


@pytest.fixture
def operator_client(client, operator):
    client.force_login(operator)
    return client


@pytest.fixture
def gateway(db):
    return GatewayFactory(name="edge-1")


@pytest.fixture
def pipeline(gateway):
    return PipelineFactory(name="crm_to_warehouse", default_gateway=gateway)


@pytest.fixture
def run(pipeline):
    return RunFactory(pipeline=pipeline)


@pytest.fixture
def gateway_token(gateway) -> str:
    _, raw = gateway_token_issue(actor=Actor.system(), gateway=gateway)
    return raw


@pytest.fixture
def api_key(user) -> str:
    _, raw = api_key_issue(actor=Actor.system(), user=user)
    return raw


def bearer_client(secret: str) -> APIClient:
    """An API client sending ``secret`` (a gateway token or an API key) as its bearer."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def key_client_of(user) -> APIClient:
    """An API client with a new API key of ``user``."""
    return bearer_client(api_key_issue(actor=Actor.system(), user=user)[1])


@pytest.fixture
def agent_client(gateway_token) -> APIClient:
    return bearer_client(gateway_token)


@pytest.fixture
def key_client(api_key) -> APIClient:
    return bearer_client(api_key)
