"""Run detail as a debugger in a real browser: from a failed run to its failing line, line links
that survive a new tab, the node timeline filtering the log, and log search across runs."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from common.actors import Actor
from runs import services
from runs.models import RunStatus
from tests.browser.conftest import sign_in
from tests.factories import GatewayFactory, PipelineFactory, RunFactory

pytestmark = pytest.mark.browser

ERROR_LINE = 200


@pytest.fixture
def failed(transactional_db):
    """A failed run of 12 nodes (two parallel branches, a retried failure, one never started)
    with 300 log lines; the first error is line 200, far below the log box's first screen."""
    pipeline = PipelineFactory(name="crm_to_warehouse", default_gateway=GatewayFactory())
    start = timezone.now() - timedelta(hours=1)
    run = RunFactory(
        pipeline=pipeline,
        status=RunStatus.FAILED,
        created_at=start,
        started_at=start + timedelta(seconds=20),
        finished_at=start + timedelta(minutes=14),
        error_summary="dbt: model stg_orders failed: relation does not exist",
    )
    entries = []
    for seq in range(1, 301):
        node = f"n_{(seq // 25):02d}"
        level = "error" if seq in (ERROR_LINE, 260) else "info"
        entries.append({"level": level, "message": f"step {seq} of {node}", "nodeId": node})
    services.run_update(actor=Actor.system(), run=run, changes={"log_entries": entries})
    t = run.started_at
    plan = [  # node, start, end (seconds after the run started), status, retries
        ("n_00", 0, 60, "succeeded", 0),
        ("n_01", 60, 150, "succeeded", 0),
        ("n_02", 60, 100, "succeeded", 0),
        ("n_03", 150, 260, "succeeded", 1),
        ("n_04", 100, 130, "succeeded", 0),
        ("n_05", 260, 400, "succeeded", 0),
        ("n_06", 260, 300, "succeeded", 0),
        ("n_07", 400, 520, "succeeded", 0),
        ("n_08", 520, 640, "failed", 2),
        ("n_09", 300, 340, "succeeded", 0),
        ("n_10", 340, 380, "succeeded", 0),
    ]
    nodes = [
        {
            "nodeId": name,
            "type": "dbt.model",
            "status": status,
            "startedAt": (t + timedelta(seconds=begin)).isoformat(),
            "finishedAt": (t + timedelta(seconds=end)).isoformat(),
            "retries": retries,
            "metrics": {"rowsOut": 1000 * (index + 1)},
        }
        for index, (name, begin, end, status, retries) in enumerate(plan)
    ]
    nodes.append({"nodeId": "n_11", "type": "dbt.test", "status": "skipped"})
    services.run_update(actor=Actor.system(), run=run, changes={"nodes": nodes})
    run.refresh_from_db()
    return run


def test_from_a_failed_row_to_the_failing_line_with_context_in_two_clicks(
    page, live_server, failed, operator, screenshot
):
    sign_in(page, live_server, "operator")
    page.click(f"a[href='/runs/{failed.public_id}/']")  # 1
    expect(page.locator("h1")).to_contain_text(failed.public_id)
    page.get_by_role("link", name="First error", exact=True).click()  # 2

    expect(page).to_have_url(re.compile(rf"around={ERROR_LINE}#L{ERROR_LINE}$"))
    focus = page.locator(f"#L{ERROR_LINE}")
    expect(focus).to_have_class(re.compile("is-focus"))
    expect(focus).to_be_in_viewport()
    lines = page.locator(".log-line")
    expect(lines).to_have_count(21)
    expect(lines.first).to_have_attribute("id", f"L{ERROR_LINE - 10}")
    expect(lines.last).to_have_attribute("id", f"L{ERROR_LINE + 10}")
    expect(page.locator(".log-line.is-context")).to_have_count(20)
    screenshot(page, "run-detail-first-error")

    # The context stays when the level filter would hide it, and its width is adjustable.
    page.goto(f"{live_server.url}/runs/{failed.public_id}/?level=error")
    expect(lines).to_have_count(2)
    page.get_by_role("link", name="First error", exact=True).click()
    expect(lines).to_have_count(21)
    expect(page.locator(f"#L{ERROR_LINE - 1}")).to_contain_text(f"step {ERROR_LINE - 1}")

    # The error panel's link lands on the same line after a full navigation.
    page.goto(f"{live_server.url}/runs/{failed.public_id}/")
    page.locator(".panel-error a[data-first-error]").click()
    expect(page.locator(f"#L{ERROR_LINE}")).to_be_in_viewport()


def test_a_copied_line_link_opened_in_a_new_page_lands_on_that_line(
    browser, live_server, failed, operator, settings
):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    page = context.new_page()
    sign_in(page, live_server, "operator", path=f"/runs/{failed.public_id}/")
    page.locator("#L250 a.ln").click()
    page.locator("#L253 a.ln").click(modifiers=["Shift"])
    expect(page).to_have_url(re.compile(r"#L250-L253$"))
    page.get_by_role("button", name="Copy link to line").click()
    expect(page.locator("[data-log-copy-status]")).to_contain_text("Link copied")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied.endswith(f"/runs/{failed.public_id}/#L250-L253")

    other = context.new_page()
    other.goto(copied)
    expect(other.locator(".log-line.is-selected")).to_have_count(4)
    expect(other.locator("#L250")).to_have_class(re.compile("is-selected"))
    expect(other.locator("#L250")).to_be_in_viewport()

    # A link to a line the filter hides still lands on it, with its context.
    other.goto(f"{live_server.url}/runs/{failed.public_id}/?level=error#L150")
    expect(other.locator("#L150")).to_have_class(re.compile("is-selected"))
    expect(other.locator("#L150")).to_be_in_viewport()

    # A link to a line the run no longer keeps says so.
    settings.RUN_LOG_CAP = 20
    trimmed = RunFactory(pipeline=failed.pipeline, status=RunStatus.RUNNING)
    for index in range(30):
        services.run_update(
            actor=Actor.system(),
            run=trimmed,
            changes={"append_log": {"level": "info", "message": f"l{index}"}},
        )
    other.goto(f"{live_server.url}/runs/{trimmed.public_id}/#L3")
    expect(other.locator("[data-log-notice]")).to_have_text(
        "Line 3: this line is no longer kept (the newest 20 are)."
    )
    context.close()


def test_clicking_a_timeline_node_filters_the_log_and_marks_its_row(
    page, live_server, failed, operator, screenshot
):
    sign_in(page, live_server, "operator", path=f"/runs/{failed.public_id}/")
    timeline = page.locator("svg.timeline")
    expect(timeline.locator("a.tl-node")).to_have_count(12)
    expect(timeline.locator("a.tl-node.is-critical")).to_have_count(6)
    assert timeline.get_attribute("data-critical") == "n_00 n_01 n_03 n_05 n_07 n_08"
    node = timeline.locator("a.tl-node[data-node-id='n_08']")
    node.focus()
    expect(node.locator(".tl-tip")).to_be_visible()
    expect(node.locator(".tl-tip")).to_have_text("2m · 9,000 rows")
    screenshot(page, "run-detail-timeline")

    node.click()
    expect(page).to_have_url(re.compile(r"\?nodeId=n_08$"))
    lines = page.locator(".log-line")
    expect(lines).to_have_count(25)
    for text in lines.locator(".node").all_inner_texts():
        assert text == "n_08"
    expect(page.locator("tr[data-node-id='n_08']")).to_have_class(re.compile("is-selected"))
    expect(page.locator("#log-node")).to_have_value("n_08")
    expect(node).to_have_class(re.compile("is-selected"))

    node.click()  # again: the filter is cleared
    expect(page).to_have_url(re.compile(rf"/runs/{failed.public_id}/$"))
    expect(lines).to_have_count(300)

    page.go_back()
    expect(page.locator("tr[data-node-id='n_08']")).to_have_class(re.compile("is-selected"))


def test_search_across_runs_opens_the_run_at_the_line(page, live_server, failed, operator):
    sign_in(page, live_server, "operator", path="/logs/")
    page.fill("#s-q", "step 260 of")
    page.get_by_role("button", name="Search").click()
    expect(page).to_have_url(re.compile(r"/logs/\?q=step(\+|%20)260(\+|%20)of"))
    hits = page.locator("table.hits tbody tr")
    expect(hits).to_have_count(1)
    hits.locator("a").first.click()
    expect(page).to_have_url(re.compile(rf"/runs/{failed.public_id}/#L260$"))
    expect(page.locator("#L260")).to_have_class(re.compile("is-selected"))
    expect(page.locator("#L260")).to_be_in_viewport()

    page.goto(f"{live_server.url}/logs/?q=ab")
    expect(page.locator(".alert-error")).to_contain_text("at least 3 letters")


def test_the_log_node_filter_lists_every_node_of_the_run(page, live_server, failed, operator):
    # n_00 to n_11 have node records; n_12 has none, only a log line (line 300).
    sign_in(page, live_server, "operator", path=f"/runs/{failed.public_id}/")
    options = page.locator("#log-node option")
    expected = ["All nodes"] + [f"n_{index:02d}" for index in range(13)]
    expect(options).to_have_text(expected)

    page.select_option("#log-node", "n_12")
    expect(page).to_have_url(re.compile(r"nodeId=n_12"))
    expect(page.locator(".log-line")).to_have_count(1)
    expect(page.locator(".log-line")).to_contain_text("step 300 of n_12")
    # The fragment that replaced the panel lists them all too, n_12 once.
    expect(options).to_have_text(expected)
    expect(page.locator("#log-node")).to_have_value("n_12")


def test_the_first_error_button_reads_as_one_phrase(page, live_server, failed, operator):
    sign_in(page, live_server, "operator", path=f"/runs/{failed.public_id}/")
    button = page.locator(".panel-error a[data-first-error]")
    node = f"n_{ERROR_LINE // 25:02d}"
    assert button.inner_text() == f"Go to the first error, line {ERROR_LINE} (node {node}) →"
    gap = button.evaluate(
        """(a) => {
          const node = a.querySelector('.mono');
          const range = document.createRange();
          range.setStart(node.nextSibling, 0);
          range.setEnd(node.nextSibling, 1);
          return range.getBoundingClientRect().left - node.getBoundingClientRect().right;
        }"""
    )
    assert abs(gap) < 1.5, gap  # ")" right after the node's name, no space between
