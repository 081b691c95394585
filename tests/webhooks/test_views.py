"""The webhook deliveries panel of run detail, served by the webhooks app."""

from datetime import timedelta

import pytest
from django.utils import timezone

from common.actors import Actor
from runs import services
from runs.models import RunStatus
from tests.factories import RunFactory
from webhooks.models import WebhookDelivery
from webhooks.services import webhook_delivery_attempt, webhook_endpoint_create


@pytest.mark.django_db
def test_run_detail_loads_the_deliveries_panel_which_lists_attempts(
    analyst_client, pipeline, settings
):
    settings.WEBHOOK_ALLOW_PRIVATE_URLS = True
    # Nothing listens on the discard port: the attempt fails at once, on this machine.
    webhook_endpoint_create(
        actor=Actor.system(), url="http://127.0.0.1:9/hooks/runs", events=["run.failed"]
    )
    started = timezone.now() - timedelta(minutes=5)
    run = RunFactory(pipeline=pipeline, status=RunStatus.RUNNING, started_at=started)
    panel_url = f"/runs/{run.public_id}/webhooks/"

    detail = analyst_client.get(f"/runs/{run.public_id}/").content.decode()
    assert f'hx-get="{panel_url}"' in detail and f'href="{panel_url}"' in detail
    before = analyst_client.get(panel_url, HTTP_HX_REQUEST="true").content.decode()
    assert "Webhooks are sent when the run finishes." in before
    assert 'hx-trigger="every 5s"' in before  # refreshes until the run's event is sent

    services.run_update(
        actor=Actor.system(), run=run, changes={"status": "failed", "error_summary": "suspended"}
    )
    delivery = WebhookDelivery.objects.get()
    webhook_delivery_attempt(delivery_id=delivery.pk)
    section = analyst_client.get(panel_url, HTTP_HX_REQUEST="true").content.decode()
    assert "<!doctype" not in section.lower()  # the fragment only
    assert "run.failed" in section and "http://127.0.0.1:9/hooks/runs" in section
    assert '<details class="attempts"><summary>1</summary>' in section

    page = analyst_client.get(panel_url).content.decode()  # without JavaScript: a whole page
    assert "<!doctype" in page.lower() and "run.failed" in page


@pytest.mark.django_db
def test_deliveries_panel_stops_polling_once_nothing_can_change(analyst_client, pipeline):
    run = RunFactory(pipeline=pipeline, status=RunStatus.SUCCEEDED)
    section = analyst_client.get(f"/runs/{run.public_id}/webhooks/", HTTP_HX_REQUEST="true")
    html = section.content.decode()
    assert "No webhook endpoint wanted this run's event." in html
    assert "hx-trigger" not in html


@pytest.mark.django_db
def test_deliveries_panel_of_an_unknown_run_is_404(analyst_client):
    assert analyst_client.get("/runs/run_nope/webhooks/").status_code == 404
