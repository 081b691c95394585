"""A live gunicorn (the Procfile's web line) keeps its processes through a database outage:
while the database is gone every API answer is a JSON 503 with Retry-After, and once it is back
every worker answers again, with no restart."""

import subprocess
import sys
import time

import httpx
import psycopg
import pytest

from loadtest.stack import ROOT, Stack, admin_url, database_name, process_env

pytestmark = pytest.mark.smoke_load


def manage(url: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=process_env(url),
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )
    return result.stdout


def sql(url: str, *statements: str) -> None:
    name = database_name(url)
    with psycopg.connect(admin_url(url), autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement.format(name=name), [name] if "%s" in statement else [])


def test_a_database_outage_is_503_json_then_recovers_without_restart(
    scratch_database_url, tmp_path
):
    url = scratch_database_url
    manage(url, "migrate", "--no-input", "-v", "0")
    token = manage(url, "create_gateway", "edge-outage").strip().splitlines()[-1]
    stack = Stack(database_url=url, out_dir=tmp_path, env_extra={"WEB_CONCURRENCY": "2"})
    stack.start_web()
    headers = {"Authorization": f"Bearer {token}"}
    poll = f"{stack.base_url}/api/agent/runs"
    try:
        # Every worker opens its persistent connection (CONN_MAX_AGE) before the outage.
        assert {httpx.get(poll, headers=headers).status_code for _ in range(10)} == {200}

        sql(
            url,
            'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false',
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
        )
        during = [httpx.get(poll, headers=headers, timeout=10) for _ in range(6)]
        assert {r.status_code for r in during} == {503}
        for response in during:
            assert response.headers["Content-Type"].startswith("application/json")
            assert response.json()["code"] == "unavailable"
            assert response.headers["Retry-After"].isdigit()

        sql(url, 'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        deadline = time.monotonic() + 10
        codes = []
        while time.monotonic() < deadline:
            codes = [httpx.get(poll, headers=headers).status_code for _ in range(10)]
            if set(codes) == {200}:
                break
            time.sleep(0.5)
        assert set(codes) == {200}, codes
        assert stack.web.poll() is None, "gunicorn exited"
    finally:
        stack.stop()
