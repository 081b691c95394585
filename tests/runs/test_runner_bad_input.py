"""Every refusal of the runner PATCH: the right status, JSON naming the field, nothing changed."""

import json

import pytest

from tests.runs.conftest import snapshot

pytestmark = pytest.mark.django_db

BAD_BODIES = [
    ({"status": "done"}, "status"),
    ({"stauts": "running"}, "stauts"),
    ({"status": 1}, "status"),
    ({"status": None}, "status"),
    ({"appendLog": {"level": "debug", "message": "x"}}, "appendLog.level"),
    ({"appendLog": {"level": "info"}}, "appendLog.message"),
    ({"appendLog": {"level": "info", "message": 12}}, "appendLog.message"),
    ({"appendLog": {"level": "info", "message": ["x"]}}, "appendLog.message"),
    ({"appendLog": {"level": "info", "message": "x", "colour": "red"}}, "appendLog.colour"),
    ({"appendLog": [{"level": "info", "message": "x"}]}, "appendLog"),
    ({"appendLog": "hello"}, "appendLog"),
    # Levels that are not even strings (a set of the levels cannot hold a list).
    ({"appendLog": {"level": [], "message": "x"}}, "appendLog.level"),
    ({"appendLog": {"level": {"a": 1}, "message": "x"}}, "appendLog.level"),
    ({"appendLogs": [{"level": ["info"], "message": "x"}]}, "appendLogs[0].level"),
    ({"logEntries": {"level": "info", "message": "x"}}, "logEntries"),
    ({"logEntries": [{"level": "info", "message": "x", "at": "yesterday"}]}, "logEntries[0].at"),
    ({"logEntries": ["x"]}, "logEntries[0]"),
    ({"telemetrySummary": {"progress": 101}}, "telemetrySummary.progress"),
    ({"telemetrySummary": {"progress": -1}}, "telemetrySummary.progress"),
    ({"telemetrySummary": {"rowsLoaded": -5}}, "telemetrySummary.rowsLoaded"),
    ({"telemetrySummary": {"rowsLoaded": 1.5}}, "telemetrySummary.rowsLoaded"),
    ({"telemetrySummary": {"rowsLoaded": "12"}}, "telemetrySummary.rowsLoaded"),
    ({"telemetrySummary": {"bytesLoaded": True}}, "telemetrySummary.bytesLoaded"),
    ({"telemetrySummary": {"bytesLoaded": 2**63}}, "telemetrySummary.bytesLoaded"),
    ({"telemetrySummary": {"progress": "50"}}, "telemetrySummary.progress"),
    ({"telemetrySummary": {"currentPhase": 3}}, "telemetrySummary.currentPhase"),
    ({"telemetrySummary": {"nested": {"a": 1}}}, "telemetrySummary.nested"),
    ({"telemetrySummary": {"big": 10**30}}, "telemetrySummary.big"),
    ({"telemetrySummary": [1, 2]}, "telemetrySummary"),
    ({"appendTelemetrySample": {"rowsLoaded": "12"}}, "appendTelemetrySample.rowsLoaded"),
    ({"appendTelemetrySample": {"progress": 200}}, "appendTelemetrySample.progress"),
    ({"appendTelemetrySample": {"phase": "load"}}, "appendTelemetrySample.phase"),
    ({"appendTelemetrySample": {"at": "2025-03-27T02:00:00"}}, "appendTelemetrySample.at"),
    ({"appendTelemetrySample": [{"rowsLoaded": 1}]}, "appendTelemetrySample"),
    ({"telemetrySamples": {"rowsLoaded": 1}}, "telemetrySamples"),
    ({"telemetrySamples": [{"rowsLoaded": -1}]}, "telemetrySamples[0].rowsLoaded"),
    ({"errorSummary": 5}, "errorSummary"),
    ({"errorSummary": {"message": "x"}}, "errorSummary"),
    ({"startedAt": "2025-03-27T02:00:00"}, "startedAt"),
    ({"startedAt": "2025-03-27"}, "startedAt"),
    ({"startedAt": "0001-01-01T00:00:00Z"}, "startedAt"),
    ({"finishedAt": "10000-01-01T00:00:00Z"}, "finishedAt"),
    ({"finishedAt": "2025-02-30T00:00:00Z"}, "finishedAt"),
    ({"finishedAt": 1711504800}, "finishedAt"),
    ({"nodes": {"nodeId": "a", "status": "running"}}, "nodes"),
    ({"nodes": [{"status": "running"}]}, "nodes[0].nodeId"),
    ({"nodes": [{"nodeId": "a", "status": "exploded"}]}, "nodes[0].status"),
    ({"nodes": [{"nodeId": "a", "status": "running", "retries": -1}]}, "nodes[0].retries"),
    ({"nodes": [{"nodeId": "a", "status": "running", "metrics": []}]}, "nodes[0].metrics"),
    (
        {"nodes": [{"nodeId": "a", "status": "running"}, {"nodeId": "a", "status": "failed"}]},
        "nodes",
    ),
    ({"appendLog": {"level": "info", "message": "nul \u0000 byte"}}, "appendLog.message"),
    ({"appendLog": {"level": "info", "message": "x", "nodeId": "a\u0000"}}, "appendLog.nodeId"),
    ({"telemetrySummary": {"k\u0000": 1}}, "telemetrySummary"),
    ({"errorSummary": "lone \ud800 surrogate"}, "errorSummary"),
]


@pytest.mark.parametrize(("body", "field"), BAD_BODIES, ids=[f for _, f in BAD_BODIES])
def test_bad_field_is_refused_with_its_name_and_changes_nothing(
    agent_client, running_run, body, field
):
    before = snapshot(running_run)
    # Sent as raw text: json.dumps keeps lone surrogates as \ud800 escapes, as a client would.
    response = agent_client.generic(
        "PATCH",
        f"/api/agent/runs/{running_run.public_id}",
        json.dumps(body),
        content_type="application/json",
    )
    assert response.status_code == 400, response.content
    payload = response.json()
    assert payload["code"] == "invalid"
    assert field in payload["errors"], payload
    assert snapshot(running_run) == before


def test_finished_before_started_is_refused(agent_client, running_run):
    before = snapshot(running_run)
    response = agent_client.patch(
        f"/api/agent/runs/{running_run.public_id}",
        {"startedAt": "2025-03-27T02:00:00Z", "finishedAt": "2025-03-27T01:00:00Z"},
        format="json",
    )
    assert response.status_code == 400
    assert "finishedAt" in response.json()["errors"]
    assert snapshot(running_run) == before


RAW_BODIES = [
    (b"not json", "application/json", 400),
    (b'{"status": "running"', "application/json", 400),
    (b'{"telemetrySummary": {"progress": NaN}}', "application/json", 400),
    (b'{"telemetrySummary": {"progress": Infinity}}', "application/json", 400),
    (b'{"appendTelemetrySample": {"rowsLoaded": 1e400}}', "application/json", 400),
    (b"\xff\xfe{}", "application/json", 400),
    (b"", "application/json", 400),
    (b"[]", "application/json", 400),
    (b'"running"', "application/json", 400),
    (b"null", "application/json", 400),
    (b"[" * 300 + b"]" * 300, "application/json", 400),
    (b'{"a":' * 300 + b"1" + b"}" * 300, "application/json", 400),
    (b"[" * 100000 + b"]" * 100000, "application/json", 400),
    (b"status=running", "application/x-www-form-urlencoded", 415),
    (b'{"status": "running"}', "text/plain", 415),
]


@pytest.mark.parametrize(("raw", "content_type", "status"), RAW_BODIES)
def test_malformed_bodies_are_refused_as_json(agent_client, running_run, raw, content_type, status):
    before = snapshot(running_run)
    response = agent_client.generic(
        "PATCH", f"/api/agent/runs/{running_run.public_id}", raw, content_type=content_type
    )
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["detail"]
    assert snapshot(running_run) == before


def test_body_over_the_limit_is_413_json(agent_client, running_run, settings):
    settings.API_MAX_BODY_BYTES = 1000
    before = snapshot(running_run)
    body = json.dumps({"appendLog": {"level": "info", "message": "x" * 2000}})
    response = agent_client.generic(
        "PATCH", f"/api/agent/runs/{running_run.public_id}", body, content_type="application/json"
    )
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    assert snapshot(running_run) == before


def test_body_over_djangos_own_limit_is_413_json(agent_client, running_run):
    body = json.dumps({"appendLog": {"level": "info", "message": "x" * (2 * 1024 * 1024)}})
    response = agent_client.generic(
        "PATCH", f"/api/agent/runs/{running_run.public_id}", body, content_type="application/json"
    )
    assert response.status_code == 413
    assert response.json()["detail"]


def test_unknown_api_route_is_json_404(agent_client):
    response = agent_client.get("/api/agent/nothing-here")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_method_not_allowed_is_json(agent_client, running_run):
    response = agent_client.put(
        f"/api/agent/runs/{running_run.public_id}", {"status": "running"}, format="json"
    )
    assert response.status_code == 405
    assert response.json()["detail"]


@pytest.mark.parametrize("run_id", ["run_%00", "run_" + "x" * 300, "%F0%9F%92%A9"])
def test_ids_that_cannot_exist_are_404(agent_client, key_client, run_id):
    assert agent_client.get(f"/api/agent/runs/{run_id}").status_code == 404
    assert key_client.get(f"/api/elt/runs/{run_id}").status_code == 404
    response = agent_client.patch(f"/api/agent/runs/{run_id}", {}, format="json")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
