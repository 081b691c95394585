"""Rate limits counted in a shared store: one atomic increment a request, shared by processes.

Both stores are the real thing: Redis on 127.0.0.1:6379 (through Django's Redis backend) and the
file fallback. "Another process" is a real one, started with the same settings.
"""

import json
import logging
import os
import socket
import subprocess
import sys
import time
import uuid

import pytest
from django.conf import settings as django_settings
from rest_framework.test import APIClient

from common.api.throttling import count_request, throttle_key
from gateways.models import ApiKey
from tests.clock import inside_one_window

pytestmark = pytest.mark.django_db

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
COUNTER_SCRIPT = """
import json, os, sys
import django
django.setup()
from common.api.throttling import count_request
import time
key, n, duration, start = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
time.sleep(max(0.0, start - time.time()))  # both processes start counting at the same moment
print(json.dumps([count_request(key, duration=duration)[0] for _ in range(n)]))
"""


@pytest.fixture(params=["file", "redis"])
def store(request, settings, shared_state_dir):
    """Settings for one store, and the environment that gives another process the same."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"}
    if request.param == "redis":
        prefix = f"test-{uuid.uuid4().hex[:12]}"
        settings.THROTTLE_STORE = "cache"
        settings.CACHES = {
            "default": {
                "BACKEND": "common.cache.FailSoftRedisCache",
                "LOCATION": REDIS_URL,
                "KEY_PREFIX": prefix,
            }
        }
        env.update(REDIS_URL=REDIS_URL, CACHE_KEY_PREFIX=prefix)
        env.pop("THROTTLE_STORE", None)
    else:
        env.update(SHARED_STATE_DIR=str(shared_state_dir), THROTTLE_STORE="file")
        env.pop("REDIS_URL", None)
    return env


def other_processes(
    env, key: str, *, each: int, processes: int = 2, duration: int = 3600
) -> list[list[int]]:
    inside_one_window(duration, margin=100)
    start = time.time() + 4
    started = [
        subprocess.Popen(
            [sys.executable, "-c", COUNTER_SCRIPT, key, str(each), str(duration), str(start)],
            env=env,
            cwd=django_settings.BASE_DIR,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    results = []
    for process in started:
        out, _ = process.communicate(timeout=120)
        assert process.returncode == 0
        results.append(json.loads(out))
    return results


def unused_port() -> int:
    """A loopback port with nothing listening: connecting to it is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_concurrent_processes_never_get_the_same_count(store):
    key = f"scope:{uuid.uuid4().hex}"

    first, second = other_processes(store, key, each=5000)

    # An atomic increment hands every count out exactly once, across processes.
    assert sorted(first + second) == list(range(1, 10001))


def test_a_new_window_starts_from_one(store):
    key = f"scope:{uuid.uuid4().hex}"
    assert count_request(key, duration=60, now=6000.0) == (1, 60.0)
    assert count_request(key, duration=60, now=6059.5) == (2, 0.5)
    assert count_request(key, duration=60, now=6060.0) == (1, 60.0)


def test_the_api_limit_counts_requests_made_through_other_processes(store, settings, api_key):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        # An hour's window: the whole test falls inside one.
        "DEFAULT_THROTTLE_RATES": {"api_key": "10/hour", "gateway": "10/hour"},
    }
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key}")
    inside_one_window(3600, margin=100)
    assert client.get("/api/runs").status_code == 200

    # Two other web processes serve eight more requests of this key in the same window.
    key = throttle_key("api_key", ApiKey.objects.get())
    other_processes(store, key, each=4, duration=3600)
    assert client.get("/api/runs").status_code == 200  # the tenth
    refused = client.get("/api/runs")

    assert refused.status_code == 429
    assert refused.json()["code"] == "throttled"
    assert 1 <= int(refused["Retry-After"]) <= 3600


def test_when_redis_is_down_requests_pass_and_a_warning_is_logged(
    settings, api_key, caplog, client, user
):
    port = unused_port()
    settings.THROTTLE_STORE = "cache"
    settings.CACHES = {
        "default": {
            "BACKEND": "common.cache.FailSoftRedisCache",
            "LOCATION": f"redis://127.0.0.1:{port}/0",
            "OPTIONS": {"socket_connect_timeout": 0.25, "socket_timeout": 0.25},
        }
    }
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"api_key": "1/min", "gateway": "1/min"},
    }
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key}")
    client.force_login(user)

    with caplog.at_level(logging.WARNING):
        answers = [api.get("/api/runs").status_code for _ in range(3)]
        # The dashboard strip over a wide window goes through the same store.
        page = client.get("/runs/", {"window": "30d"})

    assert answers == [200, 200, 200]
    assert page.status_code == 200
    assert "shared store" in caplog.text
