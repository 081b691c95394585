"""The Runs page as a tool for sets of runs, in headless Chromium: label chips, "not" toggles,
sortable headers, the match count and the downloads."""

import csv
import io
import re

from playwright.sync_api import expect

from runs.models import Run
from tests.browser.conftest import sign_in


def test_label_chips_filter_and_not_toggles_exclude(page, live_server, demo, operator, screenshot):
    crm, billing = demo["crm"], demo["billing"]
    Run.objects.filter(pipeline=crm).update(labels={"team": "finance"})
    newest_billing = Run.objects.filter(pipeline=billing).order_by("-created_at").first()
    Run.objects.filter(pk=newest_billing.pk).update(labels={"team": "growth", "env": "prod"})
    sign_in(page, live_server, "operator")
    rows = page.locator("tbody#run-rows tr")
    expect(rows).to_have_count(13)
    expect(page.locator("#result-count")).to_have_text("13 runs match")

    page.locator(f"#run-{demo['running'].public_id} .label-chip").click()
    expect(page).to_have_url(re.compile(r"/runs/\?label=team%3Afinance$"))
    expect(rows).to_have_count(7)
    expect(page.locator("#result-count")).to_have_text("7 runs match")
    for cell in rows.locator(".c-pipeline").all():
        expect(cell).to_have_text("crm_to_warehouse")
    expect(page.locator("[data-label-filter]")).to_contain_text("team:finance")
    screenshot(page, "runs-label-filter")

    page.goto(f"{live_server.url}/runs/")
    page.locator("#f-not-pipeline").check()
    page.select_option("#f-pipeline", label="crm_to_warehouse")
    expect(page).to_have_url(re.compile(rf"excludePipelineId={crm.public_id}"))
    expect(rows).to_have_count(6)
    for cell in rows.locator(".c-pipeline").all():
        expect(cell).to_have_text("billing_events")

    # Everything but failed, on top of the pipeline exclusion.
    page.locator("#f-not-status").check()
    page.locator("label.chip-failed").click()
    expect(page).to_have_url(re.compile(r"excludeStatus=failed"))
    expect(rows).to_have_count(4)
    for badge in rows.locator(".badge").all():
        expect(badge).not_to_have_text(re.compile("Failed"))

    # The page as loaded from its URL shows the toggles as they were.
    page.reload()
    expect(page.locator("#f-not-pipeline")).to_be_checked()
    expect(page.locator("#f-not-status")).to_be_checked()
    expect(page.locator("#f-pipeline")).to_have_value(crm.public_id)
    expect(rows).to_have_count(4)

    # A label typed in the form, negated.
    page.goto(f"{live_server.url}/runs/")
    page.locator("#f-not-label").check()
    page.fill("#f-label", "team:finance")
    page.locator("#f-label").press("Enter")
    expect(page).to_have_url(re.compile(r"excludeLabel=team%3Afinance"))
    expect(rows).to_have_count(6)
    screenshot(page, "runs-excluded")


def test_column_headers_sort_and_nulls_come_last(page, live_server, demo, operator):
    finished = list(Run.objects.exclude(finished_at=None))
    longest = max(finished, key=lambda run: (run.finished_at - run.started_at, run.pk))
    shortest = min(finished, key=lambda run: (run.finished_at - run.started_at, -run.pk))
    sign_in(page, live_server, "operator")
    rows = page.locator("tbody#run-rows tr")

    page.locator("a.sort-link[data-sort=duration]").click()
    expect(page).to_have_url(re.compile(r"sort=-durationSeconds"))
    expect(rows.first).to_have_id(f"run-{longest.public_id}")
    expect(page.locator("th.c-duration")).to_have_attribute("aria-sort", "descending")
    # The running run has no duration yet: last.
    expect(rows.last).to_have_id(f"run-{demo['running'].public_id}")

    page.locator("a.sort-link[data-sort=duration]").click()
    expect(page).to_have_url(re.compile(r"sort=durationSeconds"))
    expect(rows.first).to_have_id(f"run-{shortest.public_id}")
    expect(rows.last).to_have_id(f"run-{demo['running'].public_id}")

    # Filters keep the sort.
    page.locator("label.chip-failed").click()
    expect(page).to_have_url(re.compile(r"status=failed"))
    expect(page).to_have_url(re.compile(r"sort=durationSeconds"))
    expect(rows).to_have_count(4)

    page.locator("a.sort-link[data-sort=rows]").click()
    expect(page).to_have_url(re.compile(r"sort=-rowsLoaded"))
    values = [
        int(value) for value in rows.locator(".c-rows").evaluate_all("els => els.map(e => e.title)")
    ]
    assert values == sorted(values, reverse=True)


def test_download_csv_is_the_current_filter_and_the_log_downloads(
    page, live_server, demo, operator
):
    sign_in(page, live_server, "operator")
    page.locator("label.chip-failed").click()
    expect(page).to_have_url(re.compile(r"status=failed$"))
    link = page.locator("#download-csv")
    expect(link).to_have_attribute("href", re.compile(r"format=csv&status=failed"))

    with page.expect_download() as download_info:
        link.click()
    download = download_info.value
    assert download.suggested_filename.startswith("runs-")
    assert download.suggested_filename.endswith(".csv")
    with open(download.path(), encoding="utf-8") as handle:
        exported = list(csv.DictReader(io.StringIO(handle.read())))
    assert len(exported) == 4
    assert {row["status"] for row in exported} == {"failed"}

    page.goto(f"{live_server.url}/runs/{demo['running'].public_id}/")
    with page.expect_download() as download_info:
        page.locator("#download-log").click()
    download = download_info.value
    assert download.suggested_filename == f"{demo['running'].public_id}-log.txt"
    with open(download.path(), encoding="utf-8") as handle:
        text = handle.read()
    assert "INFO [src] Connecting to source" in text


def test_a_url_leaving_out_two_pipelines_keeps_both_when_the_form_changes(
    page, live_server, demo, operator
):
    """The pipeline select shows one of them; the other rides along, so changing another filter
    does not bring it back."""
    from tests.factories import PipelineFactory, RunFactory

    crm, billing = demo["crm"], demo["billing"]
    third = PipelineFactory(name="ads_spend", default_gateway=crm.default_gateway)
    RunFactory(pipeline=third, status="failed")
    sign_in(page, live_server, "operator")
    page.goto(
        f"{live_server.url}/runs/?excludePipelineId={crm.public_id}"
        f"&excludePipelineId={billing.public_id}"
    )
    rows = page.locator("tbody#run-rows tr")
    expect(rows).to_have_count(1)
    expect(page.locator(".more-left-out")).to_have_text("and 1 more left out")

    page.locator("label.chip-failed").click()  # another filter: the form is sent again
    expect(page).to_have_url(re.compile(r"status=failed"))
    expect(page).to_have_url(re.compile(rf"excludePipelineId={crm.public_id}"))
    expect(page).to_have_url(re.compile(rf"excludePipelineId={billing.public_id}"))
    expect(rows).to_have_count(1)
    for cell in rows.locator(".c-pipeline").all():
        expect(cell).to_have_text("ads_spend")
