from datetime import timedelta

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from runs.models import RunStatus
from tests.factories import GatewayFactory, PipelineFactory, RunFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def signed_in(client, user):
    client.force_login(user)
    return client


# A literal login URL keeps this test independent of where the sign-in page is mounted.
@override_settings(LOGIN_URL="/signin/")
def test_panel_needs_a_signed_in_user(client):
    response = client.get("/gateways/")
    assert response.status_code == 302
    assert response["Location"] == "/signin/?next=/gateways/"


def test_panel_shows_status_last_seen_and_run_counts(signed_in):
    now = timezone.now()
    online = GatewayFactory(name="edge-online", last_seen_at=now - timedelta(seconds=5))
    GatewayFactory(name="edge-gone", last_seen_at=now - timedelta(hours=2))
    RunFactory(pipeline=PipelineFactory(default_gateway=online), status=RunStatus.RUNNING)
    gone_pipeline = PipelineFactory(default_gateway=GatewayFactory(name="edge-new"))
    RunFactory(pipeline=gone_pipeline, status=RunStatus.QUEUED)

    response = signed_in.get("/gateways/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "edge-online" in html and "edge-gone" in html and "edge-new" in html
    row = html.split('data-gateway="' + online.public_id)[1].split("</tr>")[0]
    assert "online" in row and '<td class="num">1</td>' in row
    assert "offline" in html
    assert "never connected" in html
    assert "1 queued run waiting on a gateway that is not connected yet" in html


def test_htmx_request_gets_the_table_fragment_only(signed_in):
    GatewayFactory(name="edge-1")
    response = signed_in.get("/gateways/", headers={"HX-Request": "true"})
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="gateway-table"')
    assert "<html" not in html
    assert "HX-Request" in response["Vary"]


def test_panel_query_count_does_not_grow_with_gateways(signed_in):
    def render_count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert signed_in.get("/gateways/").status_code == 200
        return len(ctx.captured_queries)

    GatewayFactory(name="edge-a")
    few = render_count()
    for index in range(10):
        gateway = GatewayFactory(name=f"edge-{index}")
        RunFactory(pipeline=PipelineFactory(default_gateway=gateway), status=RunStatus.QUEUED)
    assert render_count() == few
