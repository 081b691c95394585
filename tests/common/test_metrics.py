"""The Prometheus endpoint: its own token, and figures that follow what happened."""

import json
import os
import subprocess
import sys
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.test import Client
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from common.actors import Actor
from common.tasks import prune
from runs.models import Run
from runs.services import run_update
from tests.factories import RunFactory
from webhooks.models import WebhookDelivery
from webhooks.services import webhook_endpoint_create

pytestmark = pytest.mark.django_db
TOKEN = "metrics-token-for-tests"


@pytest.fixture
def scraper(settings):
    settings.METRICS_TOKEN = TOKEN
    client = Client()
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {TOKEN}"
    return client


def samples(client) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def test_the_endpoint_is_off_without_a_token_and_refuses_a_wrong_one(settings, client):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 404
    settings.METRICS_TOKEN = TOKEN
    refused = client.get("/metrics", HTTP_AUTHORIZATION="Bearer nope")
    assert refused.status_code == 401
    assert refused["WWW-Authenticate"].startswith("Bearer")
    assert TOKEN not in refused.content.decode()


def test_requests_are_counted_by_route_and_status(scraper, key_client, run):
    before = samples(scraper)
    key = (
        "elt_http_requests_total",
        (("method", "GET"), ("route", "runs-detail"), ("status", "200")),
    )
    missing = (
        "elt_http_requests_total",
        (("method", "GET"), ("route", "runs-detail"), ("status", "404")),
    )

    key_client.get(f"/api/runs/{run.public_id}")
    key_client.get(f"/api/runs/{run.public_id}")
    key_client.get("/api/runs/run_doesnotexist0000000000000")
    after = samples(scraper)

    assert after[key] - before.get(key, 0) == 2
    assert after[missing] - before.get(missing, 0) == 1
    bucket = (
        "elt_http_request_duration_seconds_count",
        (("method", "GET"), ("route", "runs-detail")),
    )
    assert after[bucket] - before.get(bucket, 0) == 3


def test_runs_and_the_webhook_backlog_are_read_from_the_database(scraper, pipeline, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_URLS = True
    webhook_endpoint_create(
        actor=Actor.system(), url="http://127.0.0.1:9/hooks", events=["run.succeeded"]
    )
    running = RunFactory(pipeline=pipeline)
    run_update(actor=Actor.system(), run=running, changes={"status": "running"})
    RunFactory(pipeline=pipeline)
    finished = RunFactory(pipeline=pipeline)
    run_update(actor=Actor.system(), run=finished, changes={"status": "running"})
    run_update(actor=Actor.system(), run=finished, changes={"status": "succeeded"})
    WebhookDelivery.objects.update(next_attempt_at=timezone.now() - timedelta(minutes=7))

    found = samples(scraper)

    assert found[("elt_runs_active", (("gateway", "edge-1"), ("status", "running")))] == 1
    assert found[("elt_runs_active", (("gateway", "edge-1"), ("status", "queued")))] == 1
    assert (
        found[("elt_runs_finished_last_hour", (("gateway", "edge-1"), ("status", "succeeded")))]
        == 1
    )
    assert found[("elt_webhook_backlog", ())] == 1
    assert 7 * 60 <= found[("elt_webhook_oldest_due_age_seconds", ())] < 8 * 60


def test_jobs_report_their_duration_heartbeat_and_prune_counts(scraper, pipeline):
    run = RunFactory(pipeline=pipeline)
    run_update(actor=Actor.system(), run=run, changes={"status": "running"})
    run_update(
        actor=Actor.system(), run=run, changes={"append_log": {"level": "info", "message": "x"}}
    )
    run_update(actor=Actor.system(), run=run, changes={"status": "succeeded"})
    Run.objects.filter(pk=run.pk).update(finished_at=timezone.now() - timedelta(days=31))
    before = samples(scraper)

    prune.call()
    after = samples(scraper)

    assert ("elt_periodic_job_duration_seconds", (("job", "prune"),)) in after
    assert (
        after[("elt_heartbeat_timestamp_seconds", (("process", "worker"),))]
        > timezone.now().timestamp() - 60
    )
    kind = ("elt_pruned_total", (("kind", "log lines"),))
    assert after[kind] - before.get(kind, 0) == 1


def stderr_of(script: str, **env: str) -> str:
    """What a Python process with the project's settings (and ``env``) writes to stderr."""
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", **env},
        cwd=django_settings.BASE_DIR,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stderr


def test_logs_are_json_lines_when_asked():
    script = (
        "import django, logging; django.setup(); "
        "logging.getLogger('elt.test').warning('hello %s', 'there')"
    )
    stderr = stderr_of(script, LOG_FORMAT="json")

    line = json.loads(stderr.strip().splitlines()[-1])
    assert line["level"] == "WARNING" and line["logger"] == "elt.test"
    assert line["message"] == "hello there" and "time" in line


def test_a_refused_request_logs_nothing_beside_the_access_log_and_a_server_error_logs():
    script = (
        "import django; django.setup(); "
        "from django.http import HttpResponse; from django.test import RequestFactory; "
        "from django.utils.log import log_response; "
        "request = RequestFactory().get('/api/agent/runs/run_x'); "
        "log_response('Unauthorized: %s', request.path, "
        "response=HttpResponse(status=401), request=request); "
        "log_response('Internal Server Error: %s', request.path, "
        "response=HttpResponse(status=500), request=request)"
    )
    stderr = stderr_of(script)

    assert "Internal Server Error: /api/agent/runs/run_x" in stderr
    assert "Unauthorized" not in stderr
