"""Sets of runs in a real browser: save a view, share it, open it as someone else, see it
"modified", come back to the last view; select runs or a whole filter, preview a bulk action,
confirm it and watch its progress."""

import re

import pytest
from django.contrib.auth.models import Group
from playwright.sync_api import expect

from common.models import AuditEvent
from runs.models import Run, RunStatus, SavedView
from tests.browser.conftest import sign_in
from tests.factories import RunFactory, UserFactory
from tests.webhooks.conftest import run_worker

pytestmark = pytest.mark.browser


def test_a_shared_view_is_saved_opened_by_someone_else_and_shows_when_modified(
    browser, page, live_server, demo, operator, screenshot
):
    sign_in(page, live_server, "operator")
    page.locator("label.chip-failed").click()
    expect(page).to_have_url(re.compile(r"/runs/\?status=failed$"))
    page.locator(".view-save summary").click()
    page.fill("#view-name", "Failures")
    page.check("#view-shared")
    page.locator("form[data-save-view] button[type=submit]").click()
    view = SavedView.objects.get(name="Failures")
    assert (view.query, view.shared, view.owner_id) == ("status=failed", True, operator.pk)
    expect(page).to_have_url(re.compile(rf"/runs/\?status=failed&view={view.public_id}$"))
    expect(page.locator(".view-link.is-current")).to_have_text("Failures")
    expect(page.locator("[data-view-state]")).to_contain_text("Failures")
    expect(page.locator("[data-view-modified]")).to_have_count(0)

    # A change of the filters keeps the view in the URL and says it is modified.
    page.select_option("#f-pipeline", label="crm_to_warehouse")
    expect(page).to_have_url(re.compile(rf"view={view.public_id}"))
    expect(page.locator("[data-view-modified]")).to_be_visible()
    screenshot(page, "runs-view-modified")
    page.get_by_role("link", name="Back to the view").click()
    expect(page).to_have_url(re.compile(rf"/runs/\?status=failed&view={view.public_id}$"))
    expect(page.locator("#f-pipeline")).to_have_value("")
    expect(page.locator("[data-view-modified]")).to_have_count(0)

    # A personal view stays its owner's.
    page.locator("label.chip-running").click()
    page.locator(".view-save summary").click()
    page.fill("#view-name", "Mine only")
    page.locator("form[data-save-view] button[type=submit]").click()
    personal = SavedView.objects.get(name="Mine only")
    assert personal.shared is False

    viewer = UserFactory(username="vera")
    viewer.groups.add(Group.objects.get(name="viewer"))
    other = browser.new_context(viewport={"width": 1280, "height": 900})
    other.set_default_timeout(10_000)
    second = other.new_page()
    try:
        sign_in(second, live_server, "vera")
        expect(second.locator(".view-link", has_text="Failures")).to_be_visible()
        expect(second.locator(".view-link", has_text="Mine only")).to_have_count(0)
        # No save-and-share for a viewer; no bulk bar either.
        expect(second.locator("#view-shared")).to_have_count(0)
        expect(second.locator("#bulk-form")).to_have_count(0)
        second.goto(f"{live_server.url}/runs/?view={view.public_id}")
        expect(second).to_have_url(re.compile(rf"status=failed&view={view.public_id}$"))
        expect(second.locator("input[name=status][value=failed]")).to_be_checked()
        expect(second.locator("tbody#run-rows tr")).to_have_count(4)
        response = second.goto(f"{live_server.url}/runs/?view={personal.public_id}")
        assert response.status == 404
        # The last view opened is where /runs/ opens next time.
        second.goto(f"{live_server.url}/runs/")
        expect(second).to_have_url(re.compile(rf"view={view.public_id}$"))
        second.get_by_role("link", name="Clear").click()
        expect(second).to_have_url(re.compile(r"/runs/\?view=$"))
        second.goto(f"{live_server.url}/runs/")
        expect(second).to_have_url(re.compile(r"/runs/$"))
        # A built-in view.
        second.get_by_role("link", name="Running now").click()
        expect(second).to_have_url(re.compile(r"status=running&view=view_running_now$"))
        expect(second.locator("tbody#run-rows tr")).to_have_count(1)
    finally:
        other.close()


def test_a_bulk_cancel_of_a_whole_filter_is_previewed_confirmed_and_followed(
    page, live_server, demo, operator, screenshot
):
    queued = [RunFactory(pipeline=demo["billing"], status=RunStatus.QUEUED) for _ in range(5)]
    sign_in(page, live_server, "operator")
    page.locator("label.chip-queued").click()
    expect(page.locator("tbody#run-rows tr")).to_have_count(5)
    page.check("[data-bulk-all]")
    page.get_by_role("button", name="Cancel runs…").click()
    dialog = page.locator("#bulk-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator("[data-bulk-matched]")).to_have_text("5")
    expect(dialog.locator("[data-bulk-skip]")).to_have_text("0")
    expect(dialog.locator("[data-bulk-sample] li")).to_have_count(5)
    screenshot(page, "runs-bulk-preview")
    # Made after the preview: not touched.
    late = RunFactory(pipeline=demo["billing"], status=RunStatus.QUEUED)
    dialog.locator("[data-bulk-confirm]").click()
    progress = dialog.locator("#bulk-progress")
    expect(progress).to_be_visible()
    run_worker()
    expect(progress.locator("[data-bulk-state]")).to_have_text("done", timeout=15_000)
    expect(progress.locator("[data-bulk-touched]")).to_have_text("5")
    screenshot(page, "runs-bulk-done")
    for run in queued:
        assert Run.objects.get(pk=run.pk).status == RunStatus.CANCELED
    assert Run.objects.get(pk=late.pk).status == RunStatus.QUEUED
    job_ids = set(
        AuditEvent.objects.filter(action="run.cancel_requested").values_list(
            "details__bulkJobId", flat=True
        )
    )
    assert len(job_ids) == 1 and None not in job_ids


def test_selected_rows_are_re_run_with_a_preview_that_names_what_it_skips(
    page, live_server, demo, operator
):
    sign_in(page, live_server, "operator")
    rows = page.locator("tbody#run-rows tr")
    expect(rows).to_have_count(13)
    running_id = demo["running"].public_id
    finished = [
        row for row in Run.objects.exclude(pk=demo["running"].pk).order_by("-created_at")[:2]
    ]
    for run in finished:
        page.check(f"#run-{run.public_id} input.run-check")
    page.check(f"#run-{running_id} input.run-check")
    expect(page.locator("[data-bulk-count]")).to_have_text("3 runs")
    page.get_by_role("button", name="Re-run runs…").click()
    dialog = page.locator("#bulk-dialog")
    expect(dialog.locator("[data-bulk-touch]")).to_have_text("2")
    expect(dialog.locator("[data-bulk-reasons]")).to_contain_text("not finished yet")
    dialog.locator("[data-bulk-confirm]").click()
    expect(dialog.locator("#bulk-progress")).to_be_visible()  # the job is recorded
    run_worker()
    expect(dialog.locator("[data-bulk-state]")).to_have_text("done", timeout=15_000)
    for run in finished:
        assert Run.objects.filter(rerun_of=run).count() == 1
    assert not Run.objects.filter(rerun_of=demo["running"]).exists()


def test_columns_chosen_on_the_page_are_kept_by_a_view(page, live_server, demo, operator):
    sign_in(page, live_server, "operator")
    header = page.locator("th.c-gateway")
    expect(header).to_be_visible()
    page.locator("[data-column-choice] summary").click()
    page.locator("[data-column-choice] input[value=gateway]").uncheck()
    expect(page).to_have_url(re.compile(r"columns="))
    expect(header).to_be_hidden()
    page.locator("[data-column-choice] input[value=gateway]").check()
    expect(page).not_to_have_url(re.compile(r"columns="))
    expect(header).to_be_visible()
    page.locator("[data-column-choice] input[value=spark]").uncheck()
    expect(page.locator("th.c-spark")).to_be_hidden()
    page.locator(".view-save summary").click()
    page.fill("#view-name", "No sparklines")
    page.locator("form[data-save-view] button[type=submit]").click()
    view = SavedView.objects.get(name="No sparklines")
    assert "columns=" in view.query and "spark" not in view.query
    expect(page.locator("th.c-spark")).to_be_hidden()
    expect(page.locator("th.c-gateway")).to_be_visible()
    expect(page.locator("[data-view-modified]")).to_have_count(0)
