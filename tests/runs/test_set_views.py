"""The Runs page's saved views and bulk forms through Django's test client: the paths without
JavaScript, the refusals (which change nothing) and the last-used view."""

import pytest

from common.models import AuditEvent, UserPreference
from runs.models import BulkJob, Run, RunStatus, SavedView
from tests.factories import RunFactory
from tests.webhooks.conftest import run_worker

pytestmark = pytest.mark.django_db(transaction=True)
LIST = "/runs/"


def state() -> dict:
    return {
        "runs": sorted(Run.objects.values_list("public_id", "status")),
        "views": SavedView.objects.count(),
        "jobs": BulkJob.objects.count(),
        "audit": AuditEvent.objects.count(),
    }


def test_a_viewer_sees_no_bulk_bar_and_is_refused_the_bulk_forms(analyst_client, pipeline):
    RunFactory(pipeline=pipeline, status=RunStatus.QUEUED)
    body = analyst_client.get(LIST).content.decode()
    assert 'id="bulk-form"' not in body and "run-check" not in body
    before = state()
    for url in ("/runs/bulk/preview/", "/runs/bulk/"):
        response = analyst_client.post(url, {"action": "cancel", "scope": "filter", "query": ""})
        assert response.status_code == 403
        assert b"operator" in response.content
    assert state() == before


def test_without_javascript_a_bulk_cancel_is_previewed_started_and_shown(operator_client, pipeline):
    queued = [RunFactory(pipeline=pipeline, status=RunStatus.QUEUED) for _ in range(3)]
    RunFactory(pipeline=pipeline, status=RunStatus.SUCCEEDED)
    body = operator_client.get(LIST).content.decode()
    assert 'id="bulk-form"' in body and body.count('class="run-check"') == 4
    preview = operator_client.post(
        "/runs/bulk/preview/", {"action": "cancel", "scope": "filter", "query": "?status=queued"}
    )
    assert preview.status_code == 200
    html = preview.content.decode()
    assert "Cancel <span data-bulk-touch>3</span> runs?" in html
    snapshot = html.split('name="snapshot" value="')[1].split('"')[0]
    started = operator_client.post(
        "/runs/bulk/",
        {"action": "cancel", "scope": "filter", "query": "status=queued", "snapshot": snapshot},
    )
    assert started.status_code == 302
    job = BulkJob.objects.get()
    assert started["Location"] == f"/runs/bulk/{job.public_id}/"
    run_worker()
    page = operator_client.get(started["Location"]).content.decode()
    assert "<strong data-bulk-touched>3</strong> canceled" in page
    assert all(Run.objects.get(pk=run.pk).status == RunStatus.CANCELED for run in queued)


def test_bad_bulk_forms_say_why_and_change_nothing(operator_client, pipeline):
    RunFactory(pipeline=pipeline, status=RunStatus.QUEUED)
    before = state()
    for data, reason in [
        ({"action": "cancel", "scope": "ids"}, "Select runs first"),
        ({"action": "cancel", "scope": "filter", "query": "status=bogus"}, "filter.status"),
        ({"action": "explode", "scope": "filter", "query": ""}, "Pick cancel or re-run"),
        ({"action": "cancel", "scope": "ids", "ids": ["run_nope"]}, "No run with this id"),
    ]:
        response = operator_client.post("/runs/bulk/preview/", data, HTTP_HX_REQUEST="true")
        assert response.status_code == 400, data
        assert reason in response.content.decode(), data
    response = operator_client.post(
        "/runs/bulk/", {"action": "cancel", "scope": "filter", "query": "", "snapshot": "forged"}
    )
    assert response.status_code == 400
    assert "snapshot" in response.content.decode()
    assert state() == before


def test_saving_a_view_without_javascript_and_the_last_view(operator_client, operator):
    response = operator_client.post(
        "/runs/views/", {"name": "Failures", "query": "status=failed&cursor=x", "shared": "on"}
    )
    view = SavedView.objects.get()
    assert (view.query, view.shared) == ("status=failed", True)
    assert response["Location"] == f"/runs/?status=failed&view={view.public_id}"
    # A bare ?view= link opens the view's own query and becomes the last view.
    opened = operator_client.get(f"/runs/?view={view.public_id}")
    assert opened["Location"] == f"/runs/?status=failed&view={view.public_id}"
    assert UserPreference.objects.get(user=operator).last_view == view.public_id
    assert operator_client.get(LIST)["Location"] == f"/runs/?view={view.public_id}"
    page = operator_client.get(f"/runs/?status=failed&view={view.public_id}").content.decode()
    assert "data-view-state" in page and "data-view-modified" not in page
    page = operator_client.get(f"/runs/?status=queued&view={view.public_id}").content.decode()
    assert "data-view-modified" in page
    # The live poll keeps the view, so a refreshed table still says so.
    assert f"view={view.public_id}" in page.split('id="live-poller"')[1].split(">")[0]
    # ?view= (blank) forgets it.
    assert operator_client.get("/runs/?view=").status_code == 200
    assert operator_client.get(LIST).status_code == 200
    # Deleting a view is its owner's.
    operator_client.post(f"/runs/views/{view.public_id}/delete/")
    assert not SavedView.objects.exists()


def test_a_bad_view_is_not_saved_and_someone_elses_personal_view_is_404(
    operator_client, analyst_client, operator
):
    before = state()
    response = operator_client.post("/runs/views/", {"name": "", "query": "status=failed"})
    assert response.status_code == 302
    assert state() == before
    mine = SavedView.objects.create(name="Mine", query="status=failed", owner=operator)
    assert analyst_client.get(f"/runs/?view={mine.public_id}").status_code == 404
    assert analyst_client.post(f"/runs/views/{mine.public_id}/delete/").status_code == 404
    # A viewer may not share.
    before = state()
    analyst_client.post("/runs/views/", {"name": "All", "query": "", "shared": "on"})
    assert state() == before


def test_the_stuck_built_in_view_is_computed_when_opened(operator_client):
    response = operator_client.get("/runs/?view=view_stuck_queued")
    assert response.status_code == 302
    assert response["Location"].startswith("/runs/?status=queued&to=")
    page = operator_client.get(response["Location"]).content.decode()
    assert "Stuck: queued for more than 15 min" in page
    assert "data-view-modified" not in page


def test_a_view_keeps_the_columns_it_shows(operator_client, pipeline):
    RunFactory(pipeline=pipeline, status=RunStatus.QUEUED)
    page = operator_client.get("/runs/?columns=status,run,pipeline").content.decode()
    hidden = page.split('data-hide="')[1].split('"')[0].split()
    assert "gateway" in hidden and "spark" in hidden and "status" not in hidden
    assert 'name="columns" value="gateway">' in page  # unchecked in the chooser
    assert "data-hide" not in operator_client.get("/runs/?status=queued").content.decode()
    operator_client.post("/runs/views/", {"name": "Narrow", "query": "columns=status,run"})
    view = SavedView.objects.get(name="Narrow")
    assert view.query == "columns=status%2Crun"
    opened = operator_client.get(f"/runs/?view={view.public_id}")
    page = operator_client.get(opened["Location"]).content.decode()
    assert "data-view-modified" not in page and 'data-hide="pipeline' in page
    # The live poll keeps the columns.
    assert "columns=status%2Crun" in page.split('id="live-poller"')[1].split(">")[0]


def test_admins_see_bulk_jobs_and_saved_views_read_only(admin_client, operator, pipeline):
    SavedView.objects.create(name="Mine", query="status=failed", owner=operator)
    RunFactory(pipeline=pipeline, status=RunStatus.QUEUED)
    from common.actors import Actor, Source
    from runs.bulk import Selection, bulk_start

    job = bulk_start(
        actor=Actor.of_user(operator, source=Source.API),
        action="cancel",
        selection=Selection(filter={}),
    )
    jobs = admin_client.get("/admin/runs/bulkjob/")
    assert jobs.status_code == 200 and job.public_id in jobs.content.decode()
    views = admin_client.get("/admin/runs/savedview/")
    assert views.status_code == 200 and "Mine" in views.content.decode()
    assert admin_client.get("/admin/runs/savedview/add/").status_code == 403


def test_an_admin_can_delete_a_person_who_saved_views_and_started_jobs(
    admin_client, operator, pipeline
):
    SavedView.objects.create(name="Mine", query="status=failed", owner=operator)
    RunFactory(pipeline=pipeline, status=RunStatus.QUEUED)
    from common.actors import Actor, Source
    from runs.bulk import Selection, bulk_start

    job = bulk_start(
        actor=Actor.of_user(operator, source=Source.API),
        action="cancel",
        selection=Selection(filter={}),
    )
    url = f"/admin/auth/user/{operator.pk}/delete/"
    assert admin_client.get(url).status_code == 200
    response = admin_client.post(url, {"post": "yes"})
    assert response.status_code == 302
    assert not SavedView.objects.filter(name="Mine").exists()
    job.refresh_from_db()
    assert job.created_by is None
