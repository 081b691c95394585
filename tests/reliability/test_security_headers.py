"""The Content-Security-Policy on pages, inline scripts carrying its nonce, and the deployment
settings a production environment gets (``manage.py check --deploy``)."""

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.urls import reverse

from tests.factories import RunFactory

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
SCRIPT_TAG = re.compile(r"<script\b([^>]*)>", re.IGNORECASE)


def policy(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    directives = {}
    for part in header.split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


def page_urls() -> list[tuple[str, bool]]:
    """(url, signed in) of every kind of page there is."""
    run = RunFactory()
    urls = [("/admin/", True), ("/admin/login/", False)]
    for name, args, signed_in in [
        ("login", [], False),
        ("runs:list", [], True),
        ("runs:detail", [run.public_id], True),
        ("runs:gateways", [], True),
        ("webhooks:run-deliveries", [run.public_id], True),
        ("api-docs", [], True),
    ]:
        # A page that is gone must fail this test, not drop out of it.
        urls.append((reverse(name, args=args), signed_in))
    return urls


def pages(client, admin_client):
    for url, signed_in in page_urls():
        response = (admin_client if signed_in else client).get(url)
        assert response.status_code == 200, url
        yield url, response


def test_pages_carry_a_policy_that_blocks_injected_scripts(client, admin_client):
    for url, response in pages(client, admin_client):
        directives = policy(response)
        scripts = directives["script-src"]
        assert "'unsafe-inline'" not in scripts, url
        assert "'unsafe-eval'" not in scripts, url
        assert directives["object-src"] == ["'none'"], url
        assert directives["frame-ancestors"] == ["'none'"], url
        assert directives["base-uri"] == ["'self'"], url


def test_every_inline_script_carries_the_nonce_of_its_response(client, admin_client):
    for url, response in pages(client, admin_client):
        nonces = [v for v in policy(response)["script-src"] if v.startswith("'nonce-")]
        html = response.content.decode()
        for attributes in SCRIPT_TAG.findall(html):
            if "src=" in attributes:
                continue
            assert nonces, f"{url}: inline <script> but no nonce in the policy"
            nonce = nonces[0][len("'nonce-") : -1]
            assert f'nonce="{nonce}"' in attributes, f"{url}: inline <script{attributes}> lacks it"


def test_api_answers_carry_the_policy_too(client):
    response = client.get("/api/agent/runs")
    assert response.status_code == 401
    assert "default-src 'self'" in response["Content-Security-Policy"]


def production_env(**extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SECURE_", "DEBUG", "SECRET_KEY", "ALLOWED_HOSTS"))
    }
    env.update(
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="runs.example.com",
        CSRF_TRUSTED_ORIGINS="https://runs.example.com",
        SECURE_SSL_REDIRECT="true",
        SECURE_PROXY_SSL_HEADER="true",
        SECURE_HSTS_INCLUDE_SUBDOMAINS="true",
        SECURE_HSTS_PRELOAD="true",
        DJANGO_SETTINGS_MODULE="config.settings",
    )
    env.update(extra)
    return env


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_in_a_production_environment():
    result = manage(
        "check", "--deploy", "--tag", "security", "--fail-level", "WARNING", env=production_env()
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_names_what_a_careless_environment_lacks():
    env = production_env(SECURE_SSL_REDIRECT="false", SECURE_HSTS_SECONDS="0")
    result = manage("check", "--deploy", "--tag", "security", "--fail-level", "WARNING", env=env)
    assert result.returncode != 0
    assert "security.W004" in result.stderr + result.stdout
    assert "security.W008" in result.stderr + result.stdout


def test_debug_false_alone_gives_secure_cookies_and_headers():
    code = (
        "import django, json; django.setup(); from django.conf import settings as s; "
        "print(json.dumps([s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, "
        "s.SESSION_COOKIE_HTTPONLY, s.SECURE_HSTS_SECONDS, s.SECURE_CONTENT_TYPE_NOSNIFF, "
        "s.X_FRAME_OPTIONS, s.SECURE_REFERRER_POLICY, bool(s.SECURE_CSP)]))"
    )
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("SECURE_", "DEBUG"))
    }
    env.update(DEBUG="false", DJANGO_SETTINGS_MODULE="config.settings")
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [
        True,
        True,
        True,
        31_536_000,
        True,
        "DENY",
        "same-origin",
        True,
    ]


def keyless_env(key: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name not in ("SECRET_KEY", "DEBUG")}
    env.update(DEBUG="false", SECRET_KEY=key, DJANGO_SETTINGS_MODULE="config.settings")
    return env


def python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


KEYS_NOT_OF_ITS_OWN = pytest.mark.parametrize(
    "key",
    ["", "dev-only-insecure-key-set-SECRET_KEY-in-production-0123456789abcdef"],
    ids=["unset", "the-published-development-key"],
)


@KEYS_NOT_OF_ITS_OWN
@pytest.mark.parametrize("process", ["config.wsgi", "config.asgi"])
def test_the_web_app_refuses_to_start_without_a_key_of_its_own(key, process):
    result = python(f"import {process}", keyless_env(key))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "SECRET_KEY is not set: set it to a long random value (DEBUG=true uses a local key)."
    ]


@KEYS_NOT_OF_ITS_OWN
def test_the_worker_refuses_to_start_without_a_key_of_its_own(key):
    result = subprocess.run(
        [sys.executable, "manage.py", "run_worker"],
        cwd=ROOT,
        env=keyless_env(key),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "SECRET_KEY is not set: set it to a long random value (DEBUG=true uses a local key)."
    )


def test_tools_run_without_a_key_but_keep_no_secret_under_a_throwaway_one():
    env = keyless_env("")
    checked = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stderr
    encrypting = python(
        "import django; django.setup(); from webhooks.fields import encrypt; encrypt('whsec_x')",
        env,
    )
    assert encrypting.returncode == 1
    assert "WEBHOOK_SECRET_KEYS needs at least one key." in encrypting.stderr
