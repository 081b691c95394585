"""Headless Chromium (Debian's) driven by Playwright against pytest-django's live server."""

import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone
from playwright.sync_api import sync_playwright

from common.actors import Actor
from gateways.services import gateway_token_issue
from runs import services
from runs.models import RunStatus
from tests.factories import GatewayFactory, PipelineFactory, RunFactory, UserFactory

# Playwright's sync API runs an event loop in this thread; the ORM calls the tests make between
# browser steps are still plain synchronous calls.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="session")
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def screenshot():
    ARTIFACTS.mkdir(exist_ok=True)

    def take(page, name: str, **kwargs) -> Path:
        path = ARTIFACTS / f"{name}.png"
        page.screenshot(path=str(path), **kwargs)
        return path

    return take


@pytest.fixture
def operator(transactional_db):
    user = UserFactory(username="operator")
    user.groups.add(Group.objects.get(name="operator"))
    return user


@pytest.fixture
def demo(transactional_db):
    """Two pipelines on one gateway, finished runs of every kind and one running run."""
    gateway = GatewayFactory(name="edge-eu-1")
    _, token = gateway_token_issue(actor=Actor.system(), gateway=gateway)
    crm = PipelineFactory(name="crm_to_warehouse", default_gateway=gateway)
    billing = PipelineFactory(name="billing_events", default_gateway=gateway)
    now = timezone.now()
    for index in range(12):
        created = now - timedelta(hours=index + 1)
        status = [RunStatus.SUCCEEDED, RunStatus.SUCCEEDED, RunStatus.FAILED][index % 3]
        run = RunFactory(
            pipeline=crm if index % 2 else billing,
            status=status,
            created_at=created,
            started_at=created,
            finished_at=created + timedelta(minutes=3 + index),
            rows_loaded=1000 * (index + 1),
            bytes_loaded=250_000 * (index + 1),
            progress=100 if status == RunStatus.SUCCEEDED else 40,
            error_summary="Snowflake: warehouse is suspended" if status == RunStatus.FAILED else "",
        )
        services.run_update(
            actor=Actor.system(),
            run=run,
            changes={
                "telemetry_samples": [
                    {"rowsLoaded": 100 * step * (index + 1), "progress": step * 10}
                    for step in range(1, 11)
                ]
            },
        )
    running = RunFactory(pipeline=crm, created_at=now - timedelta(minutes=2))
    services.run_update(actor=Actor.system(), run=running, changes={"status": RunStatus.RUNNING})
    services.run_update(
        actor=Actor.system(),
        run=running,
        changes={
            "telemetry_summary": {"rowsLoaded": 10, "progress": 5, "currentPhase": "extract"},
            "append_log": {"level": "info", "message": "Connecting to source", "nodeId": "src"},
        },
    )
    running.refresh_from_db()
    return {"gateway": gateway, "token": token, "crm": crm, "billing": billing, "running": running}


def sign_in(page, live_server, username: str, path: str = "/runs/") -> None:
    page.goto(f"{live_server.url}{path}")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"**{path}")
