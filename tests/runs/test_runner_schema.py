"""The runner routes' published shapes are generated from the declarations the answers are built
to (``runs.representations``), and real answers have exactly those fields."""

import pytest

from runs.representations import RunnerRun


@pytest.fixture
def schema(client):
    return client.get("/api/schema/?format=json").json()


def _component(schema, ref):
    return schema["components"]["schemas"][ref["$ref"].rsplit("/", 1)[1]]


@pytest.mark.django_db
def test_every_runner_route_answers_the_generated_run(schema):
    paths = schema["paths"]
    for path, method, code in [
        ("/api/agent/runs/{run_id}", "get", "200"),
        ("/api/agent/runs/{run_id}", "patch", "200"),
        ("/api/elt/runs/{run_id}", "get", "200"),
        ("/api/elt/runs/{run_id}", "patch", "200"),
        ("/api/elt/runs", "post", "201"),
    ]:
        body = paths[path][method]["responses"][code]["content"]["application/json"]["schema"]
        assert body == {"$ref": "#/components/schemas/RunnerRun"}, (path, method)
    poll = paths["/api/agent/runs"]["get"]["responses"]["200"]["content"]["application/json"]
    data = _component(schema, poll["schema"])["properties"]["data"]
    assert data["items"] == {"$ref": "#/components/schemas/RunnerRun"}
    assert set(_component(schema, data["items"])["properties"]) == set(RunnerRun.__annotations__)


@pytest.mark.django_db
def test_full_and_minimal_answers_have_the_declared_fields(schema, agent_client, run):
    component = schema["components"]["schemas"]["RunnerRun"]
    url = f"/api/agent/runs/{run.public_id}"
    agent_client.patch(url, {"appendLog": {"level": "info", "message": "hi"}}, format="json")
    full = agent_client.get(url).json()
    minimal = agent_client.get(url, HTTP_PREFER="return=minimal").json()

    assert set(full) == set(component["properties"])
    assert set(component["required"]) <= set(minimal) < set(full)
    entry = schema["components"]["schemas"]["LogEntry"]
    assert set(entry["required"]) <= set(full["logEntries"][0]) <= set(entry["properties"])
    assert component["properties"]["status"] == {"$ref": "#/components/schemas/RunStatusEnum"}
    assert component["properties"]["createdAt"]["format"] == "date-time"
