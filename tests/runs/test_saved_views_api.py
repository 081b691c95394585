"""GET/POST /api/views, GET/PATCH/DELETE /api/views/{id}: personal and shared views, the
built-in ones, strict input, and who may see and change what."""

import pytest
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from common.models import AuditEvent
from runs.models import SavedView
from runs.saved_views import normalise_query

pytestmark = pytest.mark.django_db


def state() -> dict:
    return {
        "views": sorted(SavedView.objects.values_list("public_id", "name", "query", "shared")),
        "audit": AuditEvent.objects.count(),
    }


def test_a_view_is_saved_normalised_and_listed_with_the_built_ins(viewer, pipeline):
    response = viewer.post(
        "/api/views",
        {
            "name": " Finance failures ",
            "query": f"?window=7d&status=failed&cursor=abc&pipelineId={pipeline.public_id}",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["id"].startswith("view_")
    assert body["name"] == "Finance failures"
    assert body["query"] == f"status=failed&pipelineId={pipeline.public_id}&window=7d"
    assert body["url"] == f"/runs/?view={body['id']}"
    assert (body["shared"], body["builtIn"], body["mine"], body["owner"]) == (
        False,
        False,
        True,
        "analyst",
    )
    listed = viewer.get("/api/views").json()["data"]
    assert [item["name"] for item in listed if item["builtIn"]] == [
        "Failed in the last 24 h",
        "Running now",
        "Stuck: queued for more than 15 min",
    ]
    assert [item["id"] for item in listed if not item["builtIn"]] == [body["id"]]
    stuck = next(item for item in listed if item["id"] == "view_stuck_queued")
    assert stuck["query"].startswith("status=queued&to=")
    record = AuditEvent.objects.get(action="saved_view.created")
    assert record.target_id == body["id"]


def test_a_shared_view_is_seen_by_everyone_a_personal_one_is_404_to_others(op, viewer, operator):
    shared = op.post(
        "/api/views",
        {"name": "Stuck finance", "query": "status=queued", "shared": True},
        format="json",
    )
    assert shared.status_code == 201, shared.content
    personal = op.post(
        "/api/views", {"name": "Mine", "query": "status=failed"}, format="json"
    ).json()
    seen = [item["id"] for item in viewer.get("/api/views").json()["data"] if not item["builtIn"]]
    assert seen == [shared.json()["id"]]
    assert viewer.get(f"/api/views/{shared.json()['id']}").json()["mine"] is False
    assert viewer.get(f"/api/views/{personal['id']}").status_code == 404
    before = state()
    assert (
        viewer.patch(f"/api/views/{personal['id']}", {"name": "x"}, format="json").status_code
        == 404
    )
    assert viewer.delete(f"/api/views/{personal['id']}").status_code == 404
    refused = viewer.patch(f"/api/views/{shared.json()['id']}", {"name": "x"}, format="json")
    assert refused.status_code == 403
    assert viewer.delete(f"/api/views/{shared.json()['id']}").status_code == 403
    assert state() == before


def test_sharing_needs_the_operator_role(viewer):
    before = state()
    response = viewer.post(
        "/api/views", {"name": "All", "query": "", "shared": True}, format="json"
    )
    assert response.status_code == 403
    assert response.json()["role"] == "operator"
    assert state() == before
    view = viewer.post("/api/views", {"name": "All", "query": ""}, format="json").json()
    before = state()
    assert (
        viewer.patch(f"/api/views/{view['id']}", {"shared": True}, format="json").status_code == 403
    )
    assert state() == before


def test_a_shared_view_is_changed_only_while_its_owner_may_share(op, operator):
    view = op.post(
        "/api/views",
        {"name": "Everyone's", "query": "status=failed", "shared": True},
        format="json",
    ).json()
    operator.groups.clear()
    operator.groups.add(Group.objects.get(name="viewer"))
    before = state()
    refused = op.patch(f"/api/views/{view['id']}", {"query": "status=queued"}, format="json")
    assert refused.status_code == 403
    assert refused.json()["role"] == "operator"
    assert state() == before
    # Taking it back from everyone is always allowed.
    unshared = op.patch(f"/api/views/{view['id']}", {"shared": False}, format="json")
    assert unshared.status_code == 200 and unshared.json()["shared"] is False


def test_the_owner_renames_requeries_shares_and_deletes(op):
    view = op.post("/api/views", {"name": "A", "query": "status=failed"}, format="json").json()
    changed = op.patch(
        f"/api/views/{view['id']}",
        {"name": "B", "query": "trigger=manual", "shared": True},
        format="json",
    )
    assert changed.status_code == 200, changed.content
    assert (changed.json()["name"], changed.json()["query"], changed.json()["shared"]) == (
        "B",
        "trigger=manual",
        True,
    )
    assert op.delete(f"/api/views/{view['id']}").status_code == 204
    assert not SavedView.objects.exists()
    assert list(
        AuditEvent.objects.filter(target_id=view["id"])
        .order_by("id")
        .values_list("action", flat=True)
    ) == ["saved_view.created", "saved_view.changed", "saved_view.deleted"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"query": "status=failed"}, "name"),
        ({"name": "", "query": ""}, "name"),
        ({"name": "x" * 101, "query": ""}, "name"),
        ({"name": 5, "query": ""}, "name"),
        ({"name": "a", "query": "status=bogus"}, "query.status"),
        ({"name": "a", "query": "from=yesterday"}, "query.from"),
        ({"name": "a", "query": "colour=red"}, "query.colour"),
        ({"name": "a", "query": "columns=status,nope"}, "query.columns"),
        ({"name": "a", "query": "x" * 2001}, "query"),
        ({"name": "a", "query": "", "shared": "yes"}, "shared"),
        ({"name": "a", "query": "", "owner": "bob"}, "owner"),
    ],
)
def test_bad_views_are_400_naming_the_field_and_change_nothing(viewer, body, field):
    before = state()
    response = viewer.post("/api/views", body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["errors"], response.json()
    assert state() == before


def test_a_bad_patch_changes_nothing(op):
    view = op.post("/api/views", {"name": "A", "query": "status=failed"}, format="json").json()
    before = state()
    for body in ({"query": "status=nope"}, {"name": ""}, {"id": "view_x"}, {"shared": 1}):
        response = op.patch(f"/api/views/{view['id']}", body, format="json")
        assert response.status_code == 400, (body, response.content)
    assert state() == before


def test_views_need_a_signed_in_person():
    assert APIClient().get("/api/views").status_code in (401, 403)


def test_normalising_keeps_the_filter_order_and_drops_page_state():
    assert normalise_query("window=24h&view=view_x&status=failed&status=queued&q=") == (
        "status=failed&status=queued&window=24h"
    )
