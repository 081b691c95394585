"""``common.sql`` builds the same instances as ``select_related`` would, on both databases."""

import pytest
from django.db.models import Model

from common.actors import Actor
from common.sql import Beside, select_joined, select_joined_beside
from gateways.models import GatewayToken
from gateways.services import gateway_token_authenticate
from runs import selectors
from runs.models import Run, RunStatus
from runs.services import run_update
from tests.factories import GatewayFactory, PipelineFactory, RunFactory

pytestmark = pytest.mark.django_db


def columns(instance: Model) -> dict:
    return {
        field.attname: getattr(instance, field.attname) for field in instance._meta.concrete_fields
    }


def assert_same_run(found: Run, expected: Run) -> None:
    assert columns(found) == columns(expected)
    assert columns(found.pipeline) == columns(expected.pipeline)
    if expected.gateway_id is None:
        assert found.gateway is None
    else:
        assert columns(found.gateway) == columns(expected.gateway)
    assert not found._state.adding


def test_a_run_with_every_kind_of_column_matches_the_orm(run):
    run_update(
        actor=Actor.system(),
        run=run,
        changes={
            "status": RunStatus.RUNNING,
            "telemetry_summary": {"rowsLoaded": 12, "progress": 40.5, "currentPhase": "load"},
            "append_log": {"level": "info", "message": "hello"},
            "error_summary": "nothing yet",
        },
    )
    found = select_joined(Run, ["pipeline", "gateway"], filters={"id": run.pk})
    assert_same_run(found, selectors.run_queryset().get(pk=run.pk))
    assert found.telemetry_summary["progress"] == 40.5
    assert found.started_at is not None and found.started_at.tzinfo is not None


def test_a_nullable_relation_that_is_empty_is_none_not_a_missing_row():
    run = RunFactory(pipeline=PipelineFactory(default_gateway=None), gateway=None)
    found = select_joined(Run, ["pipeline", "gateway"], filters={"id": run.pk})
    assert found is not None
    assert_same_run(found, selectors.run_queryset().get(pk=run.pk))


def test_no_row_is_none(run):
    assert select_joined(Run, ["pipeline", "gateway"], filters={"id": run.pk + 1000}) is None


def test_a_credential_lookup_matches_the_orm(gateway_token):
    token = gateway_token_authenticate(raw=gateway_token, ip="10.0.0.7")
    found = select_joined(GatewayToken, ["gateway"], filters={"id": token.pk})
    expected = GatewayToken.objects.select_related("gateway").get(pk=token.pk)
    assert columns(found) == columns(expected)
    assert columns(found.gateway) == columns(expected.gateway)
    assert found.last_used_ip == "10.0.0.7"


def test_a_row_beside_another_matches_the_orm_and_is_none_when_it_does_not_go_with_it(
    gateway_token, run
):
    token = gateway_token_authenticate(raw=gateway_token)
    other = RunFactory(pipeline=run.pipeline, gateway=GatewayFactory())

    def beside(public_id: str) -> tuple:
        return select_joined_beside(
            GatewayToken,
            ["gateway"],
            filters={"id": token.pk},
            beside=Beside(
                Run,
                ("pipeline", "gateway"),
                {"public_id": public_id},
                on=("gateway_id", "gateway_id"),
            ),
        )

    found_token, found_run = beside(run.public_id)
    expected = GatewayToken.objects.select_related("gateway").get(pk=token.pk)
    assert columns(found_token) == columns(expected)
    assert columns(found_token.gateway) == columns(expected.gateway)
    assert_same_run(found_run, selectors.run_queryset().get(pk=run.pk))
    # Another gateway's run does not go with this token; the token is still read.
    found_token, found_run = beside(other.public_id)
    assert found_token.pk == token.pk and found_run is None
    assert beside("run_missing")[0].pk == token.pk
    assert select_joined_beside(
        GatewayToken,
        ["gateway"],
        filters={"id": token.pk + 1000},
        beside=Beside(
            Run, ("pipeline",), {"public_id": run.public_id}, on=("gateway_id", "gateway_id")
        ),
    ) == (None, None)
