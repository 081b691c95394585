"""An analyst's day in a real browser: filter, go back, watch a run, read its log, act on it."""

import re

import httpx
import pytest
from django.contrib.auth.models import Group
from playwright.sync_api import expect

from common.actors import Actor
from runs import services
from runs.models import Run, RunStatus
from tests.browser.conftest import sign_in
from tests.factories import UserFactory

pytestmark = pytest.mark.browser


def patch_as_runner(live_server, demo, body: dict) -> None:
    response = httpx.patch(
        f"{live_server.url}/api/agent/runs/{demo['running'].public_id}",
        json=body,
        headers={"Authorization": f"Bearer {demo['token']}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text


def test_sign_in_filter_by_status_and_pipeline_and_go_back(
    page, live_server, demo, operator, screenshot
):
    page.goto(f"{live_server.url}/runs/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/runs/"))
    sign_in(page, live_server, "operator")
    rows = page.locator("tbody#run-rows tr")
    expect(rows).to_have_count(13)
    expect(page.locator(".board")).to_contain_text("Running now")
    screenshot(page, "runs-page")

    page.locator("label.chip-failed").click()
    expect(page).to_have_url(re.compile(r"/runs/\?status=failed$"))
    expect(rows).to_have_count(4)
    for badge in rows.locator(".badge").all():
        expect(badge).to_have_text(re.compile("Failed"))

    page.select_option("#f-pipeline", label="crm_to_warehouse")
    expect(page).to_have_url(re.compile(rf"pipelineId={demo['crm'].public_id}"))
    expect(page).to_have_url(re.compile(r"status=failed"))
    expect(rows).to_have_count(2)
    expect(rows.locator(".c-pipeline").first).to_have_text("crm_to_warehouse")
    expect(page.locator("#run-table")).not_to_have_class(re.compile("htmx-request"))
    screenshot(page, "runs-page-filtered")

    page.go_back()
    expect(page).to_have_url(re.compile(r"/runs/\?status=failed$"))
    expect(rows).to_have_count(4)
    expect(page.locator("#f-pipeline")).to_have_value("")
    expect(page.locator("input[name=status][value=failed]")).to_be_checked()

    page.go_back()
    expect(page).to_have_url(re.compile(r"/runs/$"))
    expect(rows).to_have_count(13)
    expect(page.locator("input[name=status][value=failed]")).not_to_be_checked()


def test_a_running_run_updates_itself_while_the_runner_reports(page, live_server, demo, operator):
    sign_in(page, live_server, "operator")
    row = page.locator(f"#run-{demo['running'].public_id}")
    expect(row.locator("[role=progressbar]")).to_have_attribute("aria-valuenow", "5")
    expect(row.locator("polyline")).to_have_count(0)

    for rows_loaded, progress in ((2_000, 20), (9_000, 45), (30_000, 60)):
        patch_as_runner(
            live_server,
            demo,
            {
                "telemetrySummary": {
                    "rowsLoaded": rows_loaded,
                    "progress": progress,
                    "currentPhase": "load",
                    "currentResource": "accounts",
                },
                "appendTelemetrySample": {"rowsLoaded": rows_loaded, "progress": progress},
            },
        )
    expect(row.locator("[role=progressbar]")).to_have_attribute("aria-valuenow", "60")
    expect(row.locator(".phase")).to_contain_text("load · accounts")
    expect(row.locator("polyline")).to_have_count(1)
    expect(row.locator(".c-rows")).to_have_text("30.0k")

    # A run created meanwhile appears at the top, and the strip counts it.
    new_run = services.run_trigger(actor=Actor.system(), pipeline=demo["billing"])
    expect(page.locator("tbody#run-rows tr").first).to_have_id(f"run-{new_run.public_id}")
    expect(page.locator("tbody#run-rows tr")).to_have_count(14)
    expect(page.locator("#board")).to_contain_text("14 runs")
    services.run_cancel(actor=Actor.system(), run=new_run)

    patch_as_runner(live_server, demo, {"status": "succeeded"})
    expect(row.locator(".badge")).to_have_text(re.compile("Succeeded"))
    # Nothing on the page is running any more, but new runs may still come: the poll stays.
    expect(page.locator("#live-poller[hx-get]")).to_have_count(1)


def test_run_detail_log_filter_live_tail_cancel_and_rerun(
    page, live_server, demo, operator, screenshot
):
    running = demo["running"]
    patch_as_runner(
        live_server,
        demo,
        {
            "appendLog": {"level": "warn", "message": "Slow query on accounts", "nodeId": "src"},
            "nodes": [{"nodeId": "src", "type": "source.postgres", "status": "running"}],
            "appendTelemetrySample": {"rowsLoaded": 10, "bytesLoaded": 100, "progress": 5},
        },
    )
    patch_as_runner(
        live_server,
        demo,
        {"appendTelemetrySample": {"rowsLoaded": 50, "bytesLoaded": 900, "progress": 15}},
    )
    sign_in(page, live_server, "operator")
    page.click(f"a[href='/runs/{running.public_id}/']")
    expect(page).to_have_url(re.compile(rf"/runs/{running.public_id}/$"))
    expect(page.locator("h1")).to_contain_text(running.public_id)
    expect(page.locator(".log-line")).to_have_count(2)
    expect(page.locator("table.nodes")).to_contain_text("source.postgres")

    page.locator("label.chip-lvl-warn").click()
    expect(page).to_have_url(re.compile(r"level=warn"))
    expect(page.locator(".log-line")).to_have_count(1)
    expect(page.locator(".log-line")).to_contain_text("Slow query on accounts")
    page.locator("label.chip-lvl-warn").click()
    expect(page.locator(".log-line")).to_have_count(2)

    # The live tail appends what the runner writes, and the charts follow.
    patch_as_runner(
        live_server,
        demo,
        {
            "appendLog": {"level": "info", "message": "Loaded 5000 rows into STAGE"},
            "appendTelemetrySample": {"rowsLoaded": 5000, "bytesLoaded": 70000, "progress": 55},
            "telemetrySummary": {"progress": 55, "rowsLoaded": 5000},
        },
    )
    expect(page.locator(".log-line").last).to_contain_text("Loaded 5000 rows into STAGE")
    expect(page.locator(".facts")).to_contain_text("55%")
    screenshot(page, "run-detail", full_page=True)

    page.get_by_text("Cancel run…").click()
    page.get_by_role("button", name=re.compile("Yes, cancel")).click()
    expect(page.locator(".flash")).to_contain_text("Cancel requested")
    expect(page.locator(".run-title .badge")).to_have_text(re.compile("Canceling"))
    running.refresh_from_db()
    assert running.status == RunStatus.CANCEL_REQUESTED
    expect(page.locator(".cancel-state [data-countdown]")).to_have_text(re.compile(r"^in \d+m"))
    screenshot(page, "run-detail-cancel-requested")

    # Re-run is offered once the run is final: the runner confirms the cancel.
    expect(page.get_by_role("button", name=re.compile("Re-run"))).to_be_disabled()
    patch_as_runner(live_server, demo, {"status": "canceled"})
    expect(page.locator(".run-title .badge")).to_have_text(re.compile("Canceled"))
    expect(page.locator(".cancel-state")).to_contain_text("The runner ended the run: canceled")
    page.get_by_role("button", name=re.compile("Re-run")).click()
    expect(page.locator(".flash")).to_contain_text("a re-run of " + running.public_id)
    new_run = Run.objects.exclude(pk=running.pk).order_by("-created_at").first()
    expect(page).to_have_url(re.compile(rf"/runs/{new_run.public_id}/$"))
    expect(page.locator(".run-title .badge")).to_have_text(re.compile("Queued"))
    assert new_run.pipeline == running.pipeline and new_run.gateway == running.gateway


def test_read_only_analyst_sees_disabled_actions_with_the_role_they_need(page, live_server, demo):
    UserFactory(username="analyst").groups.add(Group.objects.get(name="viewer"))
    sign_in(page, live_server, "analyst", path=f"/runs/{demo['running'].public_id}/")
    expect(page.locator(".log-line")).to_have_count(1)
    cancel = page.get_by_role("button", name="Cancel run…")
    expect(cancel).to_be_disabled()
    expect(page.locator("#cancel-reason")).to_have_text("Canceling needs the operator role.")
    expect(page.get_by_role("button", name=re.compile("Re-run"))).to_be_disabled()
    # Opening the action's own page anyway gets the app's 403 page, naming the role.
    response = page.goto(f"{live_server.url}/runs/{demo['running'].public_id}/cancel/")
    assert response.status == 403
    expect(page.locator("h1")).to_have_text("You can't do that here")
    expect(page.locator("main")).to_contain_text("Cancelling a run needs the operator role.")
    expect(page.locator(".topbar")).to_be_visible()


def test_phone_and_dark_screenshots(browser, live_server, demo, operator, screenshot):
    for scheme, width, height in (("dark", 1280, 900), ("light", 390, 844), ("dark", 390, 844)):
        context = browser.new_context(
            viewport={"width": width, "height": height}, color_scheme=scheme
        )
        page = context.new_page()
        sign_in(page, live_server, "operator")
        expect(page.locator("tbody#run-rows tr")).to_have_count(13)
        screenshot(page, f"runs-page-{scheme}-{width}", full_page=width < 500)
        page.goto(f"{live_server.url}/runs/{demo['running'].public_id}/")
        expect(page.locator(".log-line")).to_have_count(1)
        screenshot(page, f"run-detail-{scheme}-{width}", full_page=True)
        context.close()


def test_filters_and_paging_work_without_javascript(browser, live_server, demo, operator):
    context = browser.new_context(
        viewport={"width": 1280, "height": 900}, java_script_enabled=False
    )
    page = context.new_page()
    sign_in(page, live_server, "operator")
    rows = page.locator("tbody#run-rows tr")
    expect(rows).to_have_count(13)
    page.locator("label.chip-failed").click()
    page.select_option("#f-pipeline", label="billing_events")
    page.get_by_role("button", name="Apply").click()
    expect(page).to_have_url(re.compile(r"status=failed"))
    expect(page).to_have_url(re.compile(rf"pipelineId={demo['billing'].public_id}"))
    expect(rows).to_have_count(2)
    # The cancel confirmation is a plain <details>, so it opens without JavaScript too.
    page.goto(f"{live_server.url}/runs/{demo['running'].public_id}/")
    page.get_by_text("Cancel run…").click()
    page.get_by_role("button", name=re.compile("Yes, cancel")).click()
    expect(page.locator(".flash")).to_contain_text("Cancel requested")
    context.close()
