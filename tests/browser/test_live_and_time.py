"""Pages that never go stale, keep a shared view and tell time plainly, in a real browser."""

import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from django.utils import timezone
from playwright.sync_api import expect

from common.actors import Actor
from runs import services
from runs.models import RunStatus
from tests.browser.conftest import sign_in
from tests.factories import RunFactory

pytestmark = pytest.mark.browser
DASH = "\u2013"  # the en dash between the ends of a range


def agent_patch(live_server, demo, run, body: dict) -> None:
    response = httpx.patch(
        f"{live_server.url}/api/agent/runs/{run.public_id}",
        json=body,
        headers={"Authorization": f"Bearer {demo['token']}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text


def day_old_successes(pipeline, count: int) -> None:
    """``count`` succeeded runs of a minute each, a day old: older than every demo run."""
    now = timezone.now()
    for index in range(count):
        created = now - timedelta(days=1, minutes=index)
        RunFactory(
            pipeline=pipeline,
            status=RunStatus.SUCCEEDED,
            created_at=created,
            started_at=created,
            finished_at=created + timedelta(minutes=1),
        )


def test_a_failed_only_view_picks_up_a_new_failure_without_a_reload(
    page, live_server, demo, operator, screenshot
):
    sign_in(page, live_server, "operator", path="/runs/?status=failed")
    rows = page.locator("tbody#run-rows tr")
    count = page.locator("#result-count")
    expect(rows).to_have_count(4)
    # A first page holding every match: its count is the page's own, and follows it.
    expect(count).to_have_text("4 runs match")
    # The run was created before the page was opened and fails now: it was not "new", it
    # started matching the filter.
    agent_patch(
        live_server, demo, demo["running"], {"status": "failed", "errorSummary": "disk full"}
    )
    expect(rows).to_have_count(5, timeout=15_000)
    expect(count).to_have_text("5 runs match")
    expect(rows.first).to_have_id(f"run-{demo['running'].public_id}")
    expect(rows.first.locator(".badge")).to_have_text(re.compile("Failed"))
    expect(page.locator("#board")).to_contain_text("5 runs")
    # A brand-new run that fails at once appears too; the URL never changed.
    fresh = services.run_trigger(actor=Actor.system(), pipeline=demo["billing"])
    services.run_update(actor=Actor.system(), run=fresh, changes={"status": RunStatus.FAILED})
    expect(rows.first).to_have_id(f"run-{fresh.public_id}", timeout=15_000)
    expect(count).to_have_text("6 runs match")
    expect(page).to_have_url(re.compile(r"/runs/\?status=failed$"))
    screenshot(page, "runs-failed-live-count")


def test_network_cut_and_restored(page, live_server, demo, operator):
    sign_in(page, live_server, "operator")
    rows = page.locator("tbody#run-rows tr")
    expect(rows).to_have_count(13)
    status = page.locator("#live-status")
    expect(status).to_be_hidden()

    page.context.set_offline(True)
    expect(status).to_be_visible(timeout=10_000)
    expect(status).to_contain_text("Live updates paused, retrying")

    # A filter that cannot reach the server says so, and the form goes back to what the table
    # shows instead of showing a chip the table does not reflect.
    page.locator("label.chip-failed").click()
    expect(page.locator("#filter-status")).to_contain_text("Couldn't apply the filter")
    expect(page.locator("input[name=status][value=failed]")).not_to_be_checked()
    expect(rows).to_have_count(13)
    expect(page).to_have_url(re.compile(r"/runs/$"))

    # Meanwhile a run finishes; once the network is back the table catches up by itself.
    agent_patch(live_server, demo, demo["running"], {"status": "succeeded"})
    page.context.set_offline(False)
    row = page.locator(f"#run-{demo['running'].public_id}")
    expect(row.locator(".badge")).to_have_text(re.compile("Succeeded"), timeout=30_000)
    expect(status).to_be_hidden()

    # The filter that failed can be tried again.
    page.locator("[data-filter-retry]").click()
    expect(page).to_have_url(re.compile(r"/runs/\?status=failed$"))
    expect(rows).to_have_count(4)
    expect(page.locator("input[name=status][value=failed]")).to_be_checked()
    expect(page.locator("#filter-status")).to_be_hidden()


def test_a_run_finishing_while_its_detail_page_is_open(page, live_server, demo, operator):
    running = demo["running"]
    agent_patch(
        live_server,
        demo,
        running,
        {"nodes": [{"nodeId": "src", "type": "source.postgres", "status": "running"}]},
    )
    sign_in(page, live_server, "operator", path=f"/runs/{running.public_id}/")
    expect(page.locator(".run-title .badge")).to_have_text(re.compile("Running"))
    expect(page.locator("#log-foot")).to_contain_text("Live")
    expect(page.locator("#run-deliveries")).to_contain_text("sent when the run finishes")
    expect(page.get_by_role("button", name=re.compile("Re-run"))).to_be_disabled()
    expect(page.locator("#rerun-reason")).to_contain_text("once the run has finished")
    expect(page.locator(".facts .heartbeat")).to_have_text(re.compile(r"^\d+s ago$"))
    # The heartbeat and the running duration tick in the browser, between polls.
    beat = page.locator(".facts .heartbeat")
    expect(beat).not_to_have_text(beat.text_content())
    ticking = page.locator(".facts [data-live-since]")
    expect(ticking).not_to_have_text(ticking.text_content())

    agent_patch(
        live_server,
        demo,
        running,
        {
            "status": "succeeded",
            "appendLog": {"level": "info", "message": "All done"},
            "telemetrySummary": {"progress": 100},
        },
    )
    expect(page.locator(".run-title .badge")).to_have_text(re.compile("Succeeded"))
    expect(page.locator("#log-foot")).to_contain_text("the log is complete")
    expect(page.locator(".log-line").last).to_contain_text("All done")
    expect(page.locator("#run-deliveries")).to_contain_text("No webhook endpoint wanted")
    expect(page.locator(".facts .heartbeat")).to_have_count(0)
    expect(page.get_by_role("button", name=re.compile("Re-run"))).to_be_enabled()
    expect(page.get_by_text("Cancel run…")).to_have_count(0)


def test_a_shared_time_of_day_range_survives_two_filter_changes(page, live_server, demo, operator):
    day = (timezone.now() - timedelta(hours=6)).astimezone(UTC)
    start = day.replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    if start.hour >= 22:  # two hours within one day: a range across midnight names its days
        start -= timedelta(hours=3)
    end = start + timedelta(hours=2)
    shared = f"from={start:%Y-%m-%dT%H:%M:%SZ}&to={end:%Y-%m-%dT%H:%M:%SZ}"
    sign_in(page, live_server, "operator", path=f"/runs/?{shared}")
    rows = page.locator("tbody#run-rows tr")
    in_range = rows.count()
    assert in_range == 2  # runs created hourly: two start in the two hours
    title = page.locator("#board-title")
    expect(title).to_contain_text(f"{start:%H}:00 {DASH} {end:%H}:00 (UTC)")

    expect(title.locator("time")).to_have_count(2)
    expect(title.locator("time").first).to_have_attribute("datetime", f"{start:%Y-%m-%dT%H:%M:%SZ}")

    page.locator("label.chip-succeeded").click()
    expect(page).to_have_url(re.compile("status=succeeded"))
    page.select_option("#f-pipeline", label="crm_to_warehouse")
    expect(page).to_have_url(re.compile("pipelineId="))
    url = page.url
    assert f"from={start:%Y-%m-%dT%H}%3A00%3A00Z" in url, url
    assert f"to={end:%Y-%m-%dT%H}%3A00%3A00Z" in url, url
    expect(title).to_contain_text(f"{start:%H}:00 {DASH} {end:%H}:00 (UTC)")
    # The browser shows the instant in its zone (UTC here) with its time of day.
    expect(page.locator("#f-from")).to_have_value(re.compile(rf"{start:%Y-%m-%dT%H}:00(:00)?$"))

    # A range of whole days in the past survives too, and the strip names it.
    first, last = start - timedelta(days=3), start - timedelta(days=2)
    days = f"{first:%Y-%m-%d}..{last:%Y-%m-%d}"
    page.goto(f"{live_server.url}/runs/?dateRange={days}")
    page.locator("label.chip-failed").click()
    expect(page).to_have_url(re.compile("status=failed"))
    page.select_option("#f-trigger", "api")
    expect(page).to_have_url(re.compile("trigger=api"))
    assert f"dateRange={first:%Y-%m-%d}..{last:%Y-%m-%d}" in page.url.replace("%2E", "."), page.url
    expect(title).to_have_text(f"{first:%b} {first.day} {DASH} {last:%b} {last.day} (UTC)")
    expect(page.locator(".board .stat").first).to_contain_text("Still running")


def test_times_in_a_non_utc_browser_zone(browser, live_server, demo, operator):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, timezone_id="Asia/Tokyo")
    page = context.new_page()
    old = RunFactory(
        pipeline=demo["crm"],
        status=RunStatus.SUCCEEDED,
        created_at=datetime(2024, 3, 5, 23, 30, tzinfo=UTC),
        started_at=datetime(2024, 3, 5, 23, 30, tzinfo=UTC),
        finished_at=datetime(2024, 3, 5, 23, 40, 5, tzinfo=UTC),
    )
    sign_in(page, live_server, "operator", path=f"/runs/{old.public_id}/")
    started = page.locator(".facts time").nth(1)
    expect(started).to_have_attribute("datetime", "2024-03-05T23:30:00Z")
    # 23:30 UTC is 08:30 the next day in Tokyo, and the year is not this one.
    expect(started).to_have_text("Mar 6, 2024, 08:30:00 GMT+9")
    expect(page.locator(".facts time").nth(2)).to_have_text("Mar 6, 2024, 08:40:05 GMT+9")

    # The Runs page, and what its live poll swaps in, read in Tokyo time too.
    page.goto(f"{live_server.url}/runs/")
    started = page.locator(f"#run-{demo['running'].public_id} .c-started time")
    expect(started).to_have_attribute("title", re.compile(r"GMT\+9$"))
    expect(page.locator(".field-date .zone-name").first).to_have_text("GMT+9")
    services.run_update(
        actor=Actor.system(), run=demo["running"], changes={"telemetry_summary": {"progress": 61}}
    )
    row = page.locator(f"#run-{demo['running'].public_id}")
    expect(row.locator("[role=progressbar]")).to_have_attribute("aria-valuenow", "61")
    expect(row.locator(".c-started time")).to_have_attribute("title", re.compile(r"GMT\+9$"))

    # Pinning UTC in the preferences changes every page for this user.
    page.goto(f"{live_server.url}/preferences/")
    page.select_option("#f-time-zone", "UTC")
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".flash")).to_contain_text("Saved")
    page.goto(f"{live_server.url}/runs/{old.public_id}/")
    expect(page.locator(".facts time").nth(1)).to_have_text("Mar 5, 2024, 23:30:00 UTC")
    expect(page.locator(".zone-link")).to_contain_text("UTC")
    context.close()


CONTRAST = """
(el) => {
  const rgb = (s) => s.match(/[\\d.]+/g).slice(0, 3).map(Number);
  const lum = ([r, g, b]) => {
    const f = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const style = getComputedStyle(el);
  const [a, b] = [lum(rgb(style.color)), lum(rgb(style.backgroundColor))].sort((x, y) => y - x);
  return (a + 0.05) / (b + 0.05);
}
"""


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_status_badge_meets_wcag_aa_contrast(browser, live_server, demo, operator, scheme):
    for status in (RunStatus.QUEUED, RunStatus.CANCELED, RunStatus.CANCEL_REQUESTED):
        RunFactory(pipeline=demo["crm"], status=status)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, color_scheme=scheme)
    page = context.new_page()
    sign_in(page, live_server, "operator")
    seen = {}
    for badge in page.locator("tbody#run-rows .badge").all():
        status = badge.get_attribute("class").split("badge-")[-1]
        seen[status] = badge.evaluate(CONTRAST)
    assert set(seen) == set(RunStatus.values)
    assert all(ratio >= 4.5 for ratio in seen.values()), seen
    context.close()


def test_an_older_page_says_newer_runs_arrived_instead_of_inserting_them(
    page, live_server, demo, operator
):
    day_old_successes(demo["crm"], 50)
    sign_in(page, live_server, "operator")
    page.get_by_role("link", name="Older →").click()
    expect(page).to_have_url(re.compile(r"cursor="))
    rows = page.locator("tbody#run-rows tr")
    expect(rows).to_have_count(13)
    first_shown = rows.first.get_attribute("id")

    fresh = services.run_trigger(actor=Actor.system(), pipeline=demo["billing"])
    note = page.locator(".newer-note")
    expect(note).to_contain_text("1 newer run since this page was opened", timeout=15_000)
    expect(rows).to_have_count(13)
    expect(rows.first).to_have_id(first_shown)
    note.get_by_role("link").click()
    expect(page).not_to_have_url(re.compile(r"cursor="))
    expect(rows.first).to_have_id(f"run-{fresh.public_id}")


def test_a_counted_first_page_follows_a_run_that_starts_matching(
    page, live_server, demo, operator, screenshot
):
    day_old_successes(demo["crm"], 50)
    sign_in(page, live_server, "operator", path="/runs/?status=succeeded")
    rows = page.locator("tbody#run-rows tr")
    count = page.locator("#result-count")
    # More matches than the page holds: the total is counted, not the page's length.
    expect(rows).to_have_count(50)
    expect(count).to_have_text("58 runs match")

    agent_patch(live_server, demo, demo["running"], {"status": "succeeded"})
    expect(rows.first).to_have_id(f"run-{demo['running'].public_id}", timeout=15_000)
    expect(count).to_have_text("59 runs match")
    expect(rows).to_have_count(50)
    screenshot(page, "runs-counted-first-page-live")
    page.get_by_role("link", name="Older →").click()
    expect(page).to_have_url(re.compile(r"cursor="))
    expect(rows).to_have_count(9)


def test_run_detail_says_when_it_cannot_refresh_and_catches_up(page, live_server, demo, operator):
    running = demo["running"]
    sign_in(page, live_server, "operator", path=f"/runs/{running.public_id}/")
    status = page.locator("#live-status")
    expect(status).to_be_hidden()
    page.context.set_offline(True)
    expect(status).to_contain_text("Live updates paused, retrying", timeout=10_000)
    agent_patch(live_server, demo, running, {"status": "failed", "errorSummary": "disk full"})
    page.context.set_offline(False)
    expect(page.locator(".run-title .badge")).to_have_text(re.compile("Failed"), timeout=30_000)
    expect(page.locator(".panel-error")).to_contain_text("disk full")
    expect(page.locator("#log-foot")).to_contain_text("the log is complete", timeout=15_000)
    expect(status).to_be_hidden()
