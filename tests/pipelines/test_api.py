"""``/api/pipelines``: list, create, read, change, and trigger a run."""

import pytest
from django.contrib.auth.models import Group, Permission
from rest_framework.test import APIClient

from common.actors import Actor
from common.roles import Role
from gateways.services import api_key_issue
from pipelines.models import Pipeline
from runs.models import Run
from tests.factories import GatewayFactory, PipelineFactory, UserFactory

pytestmark = pytest.mark.django_db

PIPELINE_KEYS = {
    "id",
    "name",
    "description",
    "defaultGateway",
    "labels",
    "runRetentionDays",
    "logRetentionDays",
    "createdAt",
    "updatedAt",
}


def grant(user, codename: str) -> None:
    user.user_permissions.add(Permission.objects.get(codename=codename))


def assert_refused(response, field: str, status_code: int = 400) -> None:
    assert response.status_code == status_code, response.content
    body = response.json()
    assert body["detail"]
    assert field in body["errors"], body


def snapshot() -> list[tuple]:
    return list(
        Pipeline.objects.order_by("pk").values_list(
            "name", "description", "default_gateway_id", "updated_at"
        )
    )


# --- list and read ------------------------------------------------------------------------


def test_list_shape(key_client, pipeline, gateway):
    response = key_client.get("/api/pipelines")

    assert response.status_code == 200
    body = response.json()
    assert body["meta"] == {"cursor": None}
    [item] = body["data"]
    assert set(item) == PIPELINE_KEYS
    assert item["id"] == pipeline.public_id
    assert item["name"] == "crm_to_warehouse"
    assert item["defaultGateway"] == {"id": gateway.public_id, "name": "edge-1"}


def test_list_pages_by_name_each_once(key_client):
    names = [f"p{index:02d}" for index in range(7)]
    for name in reversed(names):
        PipelineFactory(name=name, default_gateway=None)

    seen, cursor = [], None
    for _ in range(10):
        response = key_client.get(
            "/api/pipelines?limit=3" + (f"&cursor={cursor}" if cursor else "")
        )
        seen += [item["name"] for item in response.json()["data"]]
        cursor = response.json()["meta"]["cursor"]
        if cursor is None:
            break

    assert seen == names


@pytest.mark.parametrize(
    ("query", "param"), [("limit=0", "limit"), ("limit=201", "limit"), ("cursor=abc", "cursor")]
)
def test_list_refuses_bad_parameters(key_client, pipeline, query, param):
    assert_refused(key_client.get(f"/api/pipelines?{query}"), param)


def test_retrieve(key_client, pipeline):
    response = key_client.get(f"/api/pipelines/{pipeline.public_id}")

    assert response.status_code == 200
    assert response.json()["id"] == pipeline.public_id
    assert set(response.json()) == PIPELINE_KEYS | {"stats"}


@pytest.mark.parametrize("pipeline_id", ["pl_nope", "run_01j8k2m4", "1", "%00", "x" * 300])
def test_unknown_pipeline_is_404(key_client, user, pipeline, pipeline_id):
    grant(user, "change_pipeline")
    grant(user, "trigger_run")

    for response in (
        key_client.get(f"/api/pipelines/{pipeline_id}"),
        key_client.patch(f"/api/pipelines/{pipeline_id}", {"name": "x"}, format="json"),
        key_client.post(f"/api/pipelines/{pipeline_id}/run", {}, format="json"),
    ):
        assert response.status_code == 404, response.content
        assert response.json()["code"] == "not_found"
    assert Run.objects.count() == 0
    assert Pipeline.objects.get().name == "crm_to_warehouse"


# --- create -------------------------------------------------------------------------------


@pytest.fixture
def creator(user):
    grant(user, "add_pipeline")
    return user


def test_create(key_client, creator, gateway):
    response = key_client.post(
        "/api/pipelines",
        {"name": "erp_sync", "description": "ERP nightly", "defaultGateway": "edge-1"},
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["name"] == "erp_sync"
    assert body["description"] == "ERP nightly"
    assert body["defaultGateway"]["id"] == gateway.public_id
    assert body["id"].startswith("pl_")
    assert Pipeline.objects.get(public_id=body["id"]).default_gateway == gateway


def test_create_by_gateway_id_and_without_one(key_client, creator, gateway):
    by_id = key_client.post(
        "/api/pipelines", {"name": "a", "defaultGateway": gateway.public_id}, format="json"
    )
    without = key_client.post("/api/pipelines", {"name": "b"}, format="json")

    assert by_id.json()["defaultGateway"]["name"] == "edge-1"
    assert without.json()["defaultGateway"] is None
    assert without.json()["description"] == ""


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "crm_to_warehouse"}, "name"),
        ({"name": ""}, "name"),
        ({"name": 12}, "name"),
        ({"name": "x" * 201}, "name"),
        ({}, "name"),
        ({"name": "ok", "defaultGateway": "nowhere"}, "defaultGateway"),
        ({"name": "ok", "colour": "blue"}, "colour"),
        (["name"], "body"),
    ],
)
def test_create_refuses_bad_bodies_and_creates_nothing(key_client, creator, pipeline, body, field):
    before = snapshot()

    assert_refused(key_client.post("/api/pipelines", body, format="json"), field)
    assert snapshot() == before


def test_create_refuses_a_body_that_is_not_json(key_client, creator, pipeline):
    bad_json = key_client.post("/api/pipelines", "{", content_type="application/json")
    form = key_client.post("/api/pipelines", "name=x", content_type="text/plain")

    assert bad_json.status_code == 400
    assert form.status_code == 415
    assert Pipeline.objects.count() == 1


def test_create_needs_the_add_permission(key_client, pipeline):
    response = key_client.post("/api/pipelines", {"name": "erp"}, format="json")

    assert response.status_code == 403
    assert "pipelines.add_pipeline" in response.json()["detail"]
    assert Pipeline.objects.count() == 1


# --- change -------------------------------------------------------------------------------


@pytest.fixture
def changer(user):
    grant(user, "change_pipeline")
    return user


def test_patch_changes_only_the_fields_sent(key_client, changer, pipeline, gateway):
    other = GatewayFactory(name="edge-2")
    url = f"/api/pipelines/{pipeline.public_id}"

    renamed = key_client.patch(url, {"name": "crm_v2"}, format="json")
    regated = key_client.patch(url, {"defaultGateway": other.public_id}, format="json")
    described = key_client.patch(url, {"description": "CRM to the warehouse"}, format="json")

    assert renamed.status_code == 200, renamed.content
    assert renamed.json()["name"] == "crm_v2"
    assert renamed.json()["defaultGateway"]["name"] == "edge-1"
    assert regated.json()["defaultGateway"]["name"] == "edge-2"
    assert described.json() == {
        **described.json(),
        "name": "crm_v2",
        "description": "CRM to the warehouse",
        "defaultGateway": {"id": other.public_id, "name": "edge-2"},
    }


def test_patch_can_clear_the_default_gateway(key_client, changer, pipeline):
    url = f"/api/pipelines/{pipeline.public_id}"

    response = key_client.patch(url, {"defaultGateway": None}, format="json")

    assert response.json()["defaultGateway"] is None
    pipeline.refresh_from_db()
    assert pipeline.default_gateway is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "taken"}, "name"),
        ({"name": None}, "name"),
        ({"description": 5}, "description"),
        ({"defaultGateway": "nowhere"}, "defaultGateway"),
        ({"name": "fine", "defaultGateway": "nowhere"}, "defaultGateway"),
        ({"id": "pl_other"}, "id"),
    ],
)
def test_patch_refuses_bad_bodies_and_changes_nothing(key_client, changer, pipeline, body, field):
    PipelineFactory(name="taken")
    before = snapshot()

    response = key_client.patch(f"/api/pipelines/{pipeline.public_id}", body, format="json")

    assert_refused(response, field)
    assert snapshot() == before


def test_patch_needs_the_change_permission(key_client, pipeline):
    before = snapshot()

    response = key_client.patch(
        f"/api/pipelines/{pipeline.public_id}", {"name": "x"}, format="json"
    )

    assert response.status_code == 403
    assert snapshot() == before


def test_put_and_delete_are_not_allowed(key_client, changer, pipeline):
    url = f"/api/pipelines/{pipeline.public_id}"

    assert key_client.put(url, {"name": "x"}, format="json").status_code == 405
    assert key_client.delete(url).status_code == 405


# --- trigger a run ------------------------------------------------------------------------


@pytest.fixture
def trigger(user):
    grant(user, "trigger_run")
    return user


def test_trigger_creates_a_queued_run_on_the_default_gateway(key_client, trigger, pipeline):
    response = key_client.post(f"/api/pipelines/{pipeline.public_id}/run")

    assert response.status_code == 201, response.content
    body = response.json()
    run = Run.objects.get(public_id=body["id"])
    assert body["status"] == "queued"
    assert body["pipelineId"] == pipeline.public_id
    assert body["pipelineName"] == pipeline.name
    assert body["gateway"]["name"] == "edge-1"
    assert body["trigger"] == {"type": "api"}
    assert body["metrics"] == {"rowsRead": None, "rowsWritten": None, "bytesShuffled": None}
    assert body["error"] is None
    assert run.gateway == pipeline.default_gateway
    assert run.created_by.username == "ana"
    assert key_client.get(f"/api/runs/{run.public_id}").json() == body


def test_trigger_on_a_named_gateway_with_details(key_client, trigger, pipeline):
    other = GatewayFactory(name="edge-2")

    by_name = key_client.post(
        f"/api/pipelines/{pipeline.public_id}/run",
        {"gateway": "edge-2", "trigger": {"type": "backfill", "from": "2025-03-01"}},
        format="json",
    )
    by_id = key_client.post(
        f"/api/pipelines/{pipeline.public_id}/run",
        {"gateway": other.public_id, "trigger": "schedule"},
        format="json",
    )

    assert by_name.status_code == by_id.status_code == 201
    assert by_name.json()["gateway"]["id"] == other.public_id
    assert by_name.json()["trigger"] == {"type": "backfill", "from": "2025-03-01"}
    assert by_id.json()["gateway"]["name"] == "edge-2"
    assert by_id.json()["trigger"] == {"type": "schedule"}


def test_trigger_through_the_api_is_an_api_run_whatever_the_credential(user, trigger, pipeline):
    client = APIClient()
    client.force_login(user)

    response = client.post(f"/api/pipelines/{pipeline.public_id}/run", {}, format="json")

    assert response.status_code == 201
    assert response.json()["trigger"] == {"type": "api"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"gateway": "nowhere"}, "gateway"),
        ({"gateway": 3}, "gateway"),
        ({"trigger": "cron"}, "trigger"),
        ({"trigger": {"scheduleId": "sch_01"}}, "trigger"),
        ({"trigger": {"type": "schedule", "nested": {"a": 1}}}, "trigger.nested"),
        ({"priority": 1}, "priority"),
        ([], "body"),
    ],
)
def test_trigger_refuses_bad_bodies_and_creates_no_run(key_client, trigger, pipeline, body, field):
    response = key_client.post(f"/api/pipelines/{pipeline.public_id}/run", body, format="json")

    assert_refused(response, field)
    assert Run.objects.count() == 0


def test_trigger_needs_a_role_that_makes_runs(pipeline):
    viewer = UserFactory(username="vera")
    viewer.groups.add(Group.objects.get(name=Role.VIEWER))
    _, raw = api_key_issue(actor=Actor.system(), user=viewer)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")

    response = client.post(f"/api/pipelines/{pipeline.public_id}/run")

    assert response.status_code == 403
    assert response.json() == {
        "detail": "Making a run needs the operator or runner role.",
        "code": "permission_denied",
        "role": "operator",
    }
    assert Run.objects.count() == 0
