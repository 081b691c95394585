"""A run that ends leaves no node running: its unfinished nodes close with it, in the service
that ends the run, whichever way it ends (issue 13)."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from common.actors import Actor
from runs import services
from runs.models import RunStatus
from runs.tasks import finish_unconfirmed_cancels, reap_lost_runs

pytestmark = pytest.mark.django_db

NODES = [
    {"nodeId": "n_done", "type": "source", "status": "succeeded"},
    {"nodeId": "n_busy", "type": "transform", "status": "running"},
    {"nodeId": "n_waiting", "type": "destination", "status": "pending"},
]


def nodes_of(client, run) -> dict[str, tuple[str, str | None]]:
    body = client.get(f"/api/runs/{run.public_id}/nodes").json()
    return {node["nodeId"]: (node["status"], node["finishedAt"]) for node in body["nodes"]}


def start(agent_client, run):
    url = f"/api/agent/runs/{run.public_id}"
    response = agent_client.patch(url, {"status": "running", "nodes": NODES}, format="json")
    assert response.status_code == 200
    return url


@pytest.mark.parametrize(
    ("final", "closed_as"),
    [("failed", "failed"), ("succeeded", "canceled"), ("canceled", "canceled")],
)
def test_a_runners_final_status_closes_its_unfinished_nodes(
    agent_client, key_client, run, final, closed_as
):
    url = start(agent_client, run)
    finished = agent_client.patch(url, {"status": final}, format="json").json()

    nodes = nodes_of(key_client, run)
    assert nodes["n_done"][0] == "succeeded"
    assert nodes["n_busy"] == (closed_as, finished["finishedAt"])
    assert nodes["n_waiting"] == (closed_as, finished["finishedAt"])


def test_a_queued_run_cancelled_at_once_closes_its_nodes(key_client, run):
    services.run_update(actor=Actor.system(), run=run, changes={"nodes": NODES[1:]})
    services.run_cancel(actor=Actor.system(), run=run)
    assert {status for status, _ in nodes_of(key_client, run).values()} == {"canceled"}


def test_the_system_closes_nodes_of_lost_and_unconfirmed_runs(
    agent_client, key_client, run, pipeline
):
    other = services.run_trigger(actor=Actor.system(), pipeline=pipeline)
    begin = timezone.now()
    with time_machine.travel(begin, tick=False):
        start(agent_client, run)
        start(agent_client, other)
        services.run_cancel(actor=Actor.system(), run=other)
    with time_machine.travel(begin + timedelta(minutes=11), tick=False):
        assert finish_unconfirmed_cancels.call() == 1
        assert reap_lost_runs.call() == 1

    run.refresh_from_db()
    other.refresh_from_db()
    assert (run.status, other.status) == (RunStatus.FAILED, RunStatus.CANCELED)
    assert nodes_of(key_client, run)["n_busy"][0] == "failed"
    assert nodes_of(key_client, other)["n_busy"][0] == "canceled"
    assert nodes_of(key_client, run)["n_done"][0] == "succeeded"
