"""The published OpenAPI schema: served, complete, and true to what the API answers.

The property test lets Schemathesis generate requests for every operation of ``/api/schema/``
and calls the WSGI application in-process (same database transaction as the test). Every answer
must be a non-5xx status the schema documents, with a body that matches the schema. The stateful
test chains operations along the links Schemathesis infers from the schema (create a pipeline,
read it, trigger a run of it, read and cancel that run...), with the same checks.
"""

import socket
import zlib

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.stateful import run_state_machine_as_test
from rest_framework.test import APIClient
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from common.actors import Actor
from gateways.services import api_key_issue, gateway_token_issue
from runs import services
from tests.factories import GatewayFactory, PipelineFactory, RunFactory, UserFactory

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
EXAMPLES_PER_OPERATION = 25


@pytest.fixture
def api_data(db):
    """A user allowed everything the API does, a gateway, and runs in every state."""
    user = UserFactory(username="schema", is_superuser=True)
    gateway = GatewayFactory(name="edge-schema")
    pipeline = PipelineFactory(name="schema_pipeline", default_gateway=gateway)
    runs = [RunFactory(pipeline=pipeline) for _ in range(3)]
    services.run_update(
        actor=Actor.system(),
        run=runs[0],
        changes={
            "status": "running",
            "append_log": {"level": "info", "message": "Started", "nodeId": "n_source"},
            "telemetry_summary": {"rowsLoaded": 10, "currentPhase": "load"},
            "append_telemetry_sample": {"rowsLoaded": 10},
            "nodes": [{"nodeId": "n_source", "type": "source.postgres", "status": "running"}],
        },
    )
    services.run_update(actor=Actor.system(), run=runs[1], changes={"status": "running"})
    services.run_update(
        actor=Actor.system(), run=runs[1], changes={"status": "failed", "error_summary": "boom"}
    )
    return {
        "api_key": api_key_issue(actor=Actor.system(), user=user)[1],
        "gateway_token": gateway_token_issue(actor=Actor.system(), gateway=gateway)[1],
        "run_ids": [run.public_id for run in runs],
        "pipeline_id": pipeline.public_id,
    }


@pytest.fixture
def wsgi_app():
    """The production WSGI application, kept from closing the test's database connection at
    the end of each request (Django's own test client does the same)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield get_wsgi_application()
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def point_at_real_resources(case, api_data) -> None:
    """Send about half of the generated ids to resources that exist, so that the success
    answers are checked against the schema as well as the 404s."""
    real_ids = {
        "run_id": api_data["run_ids"],
        "pipeline_id": [api_data["pipeline_id"]],
        "pipelineId": [api_data["pipeline_id"]],
    }
    for values in (case.path_parameters, case.body):
        if not isinstance(values, dict):
            continue
        for name, real in real_ids.items():
            value = values.get(name)
            if isinstance(value, str):
                digest = zlib.crc32(value.encode("utf-8", "surrogatepass"))
                if digest % 2 == 0:
                    values[name] = real[digest % len(real)]


@pytest.fixture
def no_dns(monkeypatch):
    """Generated webhook URLs name random hosts: resolve none of them (no traffic leaves the
    machine); literal addresses still go through the service's checks."""

    def unresolvable(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "not resolved in tests")

    monkeypatch.setattr(socket, "getaddrinfo", unresolvable)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_answers_as_the_schema_says(api_data, wsgi_app, no_dns, mode):
    schema = schemathesis.openapi.from_wsgi("/api/schema/", wsgi_app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {operation.label for operation in operations} >= {
        "GET /api/runs",
        "GET /api/runs/{run_id}",
        "DELETE /api/runs/{run_id}",
        "GET /api/runs/{run_id}/nodes",
        "POST /api/runs/{run_id}/rerun",
        "GET /api/runs/{run_id}/logs",
        "GET /api/logs",
        "POST /api/runs/bulk",
        "GET /api/runs/bulk/{job_id}",
        "GET /api/views",
        "POST /api/views",
        "GET /api/views/{view_id}",
        "PATCH /api/views/{view_id}",
        "DELETE /api/views/{view_id}",
        "GET /api/pipelines",
        "POST /api/pipelines",
        "GET /api/pipelines/{pipeline_id}",
        "PATCH /api/pipelines/{pipeline_id}",
        "POST /api/pipelines/{pipeline_id}/run",
        "POST /api/elt/runs",
        "GET /api/elt/runs/{run_id}",
        "PATCH /api/elt/runs/{run_id}",
        "GET /api/agent/runs",
        "GET /api/agent/runs/{run_id}",
        "PATCH /api/agent/runs/{run_id}",
    }

    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate, Phase.shrink],
            suppress_health_check=list(HealthCheck),
        )
        def answers_as_documented(case):
            point_at_real_resources(case, api_data)
            is_agent = case.path.startswith("/api/agent/")
            secret = api_data["gateway_token" if is_agent else "api_key"]
            case.call_and_validate(headers={"Authorization": f"Bearer {secret}"}, checks=CHECKS)

        answers_as_documented()


STATEFUL_SCENARIOS = 40
STATEFUL_STEPS = 8


def test_chained_operations_answer_as_the_schema_says(api_data, wsgi_app, no_dns):
    schema = schemathesis.openapi.from_wsgi("/api/schema/", wsgi_app)
    workflow = schema.as_state_machine()
    linked = schema.operations_with_incoming_links()
    assert {"GET /api/pipelines/{pipeline_id}", "GET /api/runs/{run_id}"} <= linked, linked
    calls = []

    class Workflow(workflow):
        # Each scenario starts from the same data, so that replaying one (to shrink it) sees the
        # same answers: what a scenario wrote is rolled back when it ends.
        def setup(self):
            self.savepoint = transaction.savepoint_create()

        def teardown(self):
            transaction.savepoint_rollback(self.savepoint)

        def before_call(self, case):
            point_at_real_resources(case, api_data)

        def get_call_kwargs(self, case):
            is_agent = case.path.startswith("/api/agent/")
            secret = api_data["gateway_token" if is_agent else "api_key"]
            return {"headers": {"Authorization": f"Bearer {secret}"}}

        def after_call(self, response, case):
            calls.append((case.operation.label, response.status_code))

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(response, checks=CHECKS, transport_kwargs=kwargs)

    run_state_machine_as_test(
        Workflow,
        settings=settings(
            max_examples=STATEFUL_SCENARIOS,
            stateful_step_count=STATEFUL_STEPS,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
    # The chains reached resources created earlier in the same scenario, not only 404s.
    succeeded = {label for label, status in calls if 200 <= status < 300}
    assert len(succeeded) >= 5, sorted(set(calls))


def test_schema_is_served_and_covers_every_route(client):
    response = client.get("/api/schema/?format=json")

    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.")
    assert set(document["paths"]) == {
        "/api/runs",
        "/api/runs/export",
        "/api/runs/{run_id}",
        "/api/runs/{run_id}/nodes",
        "/api/runs/{run_id}/rerun",
        "/api/runs/{run_id}/logs",
        "/api/logs",
        "/api/runs/{run_id}/compare",
        "/api/runs/bulk",
        "/api/runs/bulk/{job_id}",
        "/api/views",
        "/api/views/{view_id}",
        "/api/pipelines",
        "/api/pipelines/{pipeline_id}",
        "/api/pipelines/{pipeline_id}/run",
        "/api/elt/runs",
        "/api/elt/runs/{run_id}",
        "/api/agent/runs",
        "/api/agent/runs/{run_id}",
        "/api/webhooks",
        "/api/webhooks/{id}",
        "/api/webhooks/{id}/rotate-secret",
        "/api/webhooks/{id}/test",
    }
    schemes = document["components"]["securitySchemes"]
    assert schemes["apiKey"] == {**schemes["apiKey"], "type": "http", "scheme": "bearer"}
    assert schemes["gatewayToken"]["scheme"] == "bearer"
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            codes = set(operation["responses"])
            assert {"401", "429"} <= codes, (method, path)
            if "{" in path:
                assert "404" in codes, (method, path)


def test_schema_documents_every_patch_field(client):
    document = client.get("/api/schema/?format=json").json()
    components = document["components"]["schemas"]

    runner_patch = document["paths"]["/api/agent/runs/{run_id}"]["patch"]
    body_ref = runner_patch["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    runner_fields = set(components[body_ref.rsplit("/", 1)[1]]["properties"])
    pipeline_patch = document["paths"]["/api/pipelines/{pipeline_id}"]["patch"]
    body_ref = pipeline_patch["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    pipeline_fields = set(components[body_ref.rsplit("/", 1)[1]]["properties"])

    assert runner_fields == {
        "status",
        "appendLog",
        "appendLogs",
        "logEntries",
        "telemetrySummary",
        "appendTelemetrySample",
        "appendTelemetrySamples",
        "telemetrySamples",
        "errorSummary",
        "startedAt",
        "finishedAt",
        "nodes",
        "labels",
    }
    assert pipeline_fields == {
        "name",
        "description",
        "defaultGateway",
        "labels",
        "runRetentionDays",
        "logRetentionDays",
    }
    assert {"400", "409"} <= set(runner_patch["responses"])


def test_docs_page_serves_its_assets_locally(client):
    response = client.get("/api/docs/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "/api/schema/" in page
    assert "cdn" not in page.lower()
    assets = [
        part.split('"', 1)[0] for marker in ('src="', 'href="') for part in page.split(marker)[1:]
    ]
    assert any(url.endswith(".js") for url in assets), page
    for url in assets:
        assert url.startswith("/static/"), url
        assert APIClient().get(url).status_code == 200, url
