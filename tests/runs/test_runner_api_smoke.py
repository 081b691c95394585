import pytest

pytestmark = pytest.mark.django_db


def test_typical_patch_sequence(agent_client, run):
    url = f"/api/agent/runs/{run.public_id}"
    claimed = agent_client.patch(url, {"status": "running"}, format="json")
    assert claimed.status_code == 200, claimed.content
    agent_client.patch(url, {"appendLog": {"level": "info", "message": "hi"}}, format="json")
    done = agent_client.patch(
        url,
        {"status": "succeeded", "telemetrySummary": {"rowsLoaded": 5}},
        format="json",
    )
    body = done.json()
    assert body["status"] == "succeeded"
    assert [entry["message"] for entry in body["logEntries"]] == ["hi"]
    assert body["telemetry"]["summary"] == {"rowsLoaded": 5}
