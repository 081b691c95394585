"""Every string a runner, an integrator or an operator can supply renders inert, in the pages and
in every admin page, whichever apps have registered admins by the time this runs."""

import re

import pytest
from django.contrib import admin
from django.urls import reverse

from runs.models import LogLine, RunNode, TelemetrySample
from tests.factories import GatewayFactory, PipelineFactory, RunFactory
from webhooks.models import WebhookEndpoint

pytestmark = pytest.mark.django_db

SCRIPT = "<script>alert('xss')</script>"
ATTRIBUTE = '"onmouseover="alert(1)'
IMAGE = "<img src=x onerror=alert(1)>"
PAYLOAD = f"{SCRIPT} {ATTRIBUTE} {IMAGE}"
# What must never reach a page as markup: a script element, a closed attribute followed by an
# event handler, an img with a handler, or a javascript: link.
LIVE_MARKUP = [
    re.compile(r"<script>alert\('xss'\)"),
    re.compile(r'"onmouseover="alert'),
    re.compile(r"<img src=x onerror"),
    re.compile(r"href\s*=\s*[\"']?\s*javascript:", re.IGNORECASE),
]
ESCAPED = ["&lt;script&gt;", "&quot;onmouseover=&quot;", "&lt;img src=x onerror"]


def assert_inert(html: str, where: str) -> None:
    for pattern in LIVE_MARKUP:
        match = pattern.search(html)
        assert match is None, f"{where}: live markup {match.group(0)!r}"


@pytest.fixture
def hostile(db):
    """Objects whose every free-text field carries the payload."""
    gateway = GatewayFactory(name=f"gw {SCRIPT}"[:100], description=PAYLOAD)
    pipeline = PipelineFactory(name=f"pipe {PAYLOAD}", description=PAYLOAD, default_gateway=gateway)
    run = RunFactory(
        pipeline=pipeline,
        gateway=gateway,
        status="failed",
        error_summary=f"failed: {PAYLOAD}",
        telemetry_summary={"currentPhase": PAYLOAD, "currentResource": PAYLOAD, "note": PAYLOAD},
        trigger={"note": PAYLOAD},
        log_seq=2,
        sample_seq=1,
    )
    from django.utils import timezone

    now = timezone.now()
    LogLine.objects.create(run=run, seq=1, at=now, level="error", message=PAYLOAD, node_id=IMAGE)
    LogLine.objects.create(run=run, seq=2, at=now, level="info", message=SCRIPT)
    TelemetrySample.objects.create(run=run, seq=1, at=now, values={"rowsLoaded": 5})
    RunNode.objects.create(run=run, node_id=f"n {ATTRIBUTE}", type=PAYLOAD, status="failed")
    objects = [gateway, pipeline, run]
    # Saved without validation, as a row written before a stricter rule might be.
    objects.append(
        WebhookEndpoint.objects.create(
            url=f"https://example.com/hook?q={ATTRIBUTE}{SCRIPT}",
            description=PAYLOAD,
            events=["run.failed"],
        )
    )
    objects.append(
        WebhookEndpoint.objects.create(
            url="javascript:alert(1)", description="js", events=["run.failed"]
        )
    )
    return {"run": run, "objects": objects}


def admin_pages(objects) -> list[str]:
    """The changelist of every registered model, and the change page of each hostile object."""
    urls = []
    for model, _model_admin in admin.site._registry.items():
        info = (model._meta.app_label, model._meta.model_name)
        urls.append(reverse("admin:{}_{}_changelist".format(*info)))
        for obj in objects:
            if isinstance(obj, model):
                urls.append(reverse("admin:{}_{}_change".format(*info), args=[obj.pk]))
    return urls


def test_admin_pages_render_hostile_strings_inert(admin_client, hostile):
    pages = admin_pages(hostile["objects"])
    escaped_seen = False
    for url in pages:
        response = admin_client.get(url)
        assert response.status_code == 200, url
        html = response.content.decode()
        assert_inert(html, url)
        escaped_seen |= any(marker in html for marker in ESCAPED)
    if any(type(obj) in admin.site._registry for obj in hostile["objects"]):
        assert escaped_seen, "no admin page showed a hostile string at all"


def page_urls(run) -> list[str]:
    urls = []
    for name, args in [
        ("runs:list", []),
        ("runs:detail", [run.public_id]),
        ("runs:log-tail", [run.public_id]),
        ("runs:detail-live", [run.public_id]),
        ("runs:list-live", []),
        ("runs:gateways", []),
        ("webhooks:run-deliveries", [run.public_id]),
    ]:
        # A page that is gone must fail this test, not drop out of it.
        urls.append(reverse(name, args=args))
    return urls


def test_pages_render_hostile_strings_inert(admin_client, hostile):
    urls = page_urls(hostile["run"])
    shown = 0
    for url in urls:
        for headers in ({}, {"HTTP_HX_REQUEST": "true"}):
            response = admin_client.get(url, **headers)
            # Live fragments answer 204 when nothing changed since the last poll.
            assert response.status_code in (200, 204), url
            html = response.content.decode()
            assert_inert(html, url)
            shown += any(marker in html for marker in ESCAPED)
    assert shown, "no page showed a hostile string at all"
