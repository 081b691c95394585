import pytest
from rest_framework.test import APIClient

from common.actors import Actor
from runs import services
from runs.models import LogLine, Run, RunNode, TelemetrySample
from tests.conftest import key_client_of


def report(run: Run, **changes) -> Run:
    """A runner's report through the one write path (as the system, in setup)."""
    return services.run_update(actor=Actor.system(), run=run, changes=changes)


def snapshot(run: Run) -> dict:
    """Everything a PATCH could change, to show that a refused one changed nothing."""
    fresh = Run.objects.get(pk=run.pk)
    return {
        "row": {
            field.attname: getattr(fresh, field.attname) for field in Run._meta.concrete_fields
        },
        "logs": list(LogLine.objects.filter(run=run).values_list("seq", "level", "message")),
        "samples": list(TelemetrySample.objects.filter(run=run).values_list("seq", "values")),
        "nodes": list(RunNode.objects.filter(run=run).values_list("node_id", "status")),
    }


@pytest.fixture
def running_run(run, agent_client):
    response = agent_client.patch(
        f"/api/agent/runs/{run.public_id}", {"status": "running"}, format="json"
    )
    assert response.status_code == 200
    return run


@pytest.fixture
def op(operator) -> APIClient:
    """The operator's API key."""
    return key_client_of(operator)


@pytest.fixture
def viewer(analyst) -> APIClient:
    """The analyst's (a viewer's) API key."""
    return key_client_of(analyst)
