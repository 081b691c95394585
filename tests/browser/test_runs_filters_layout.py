"""The Runs page's table and filter form in headless Chromium: the table fits its box, the "not"
toggles have names and negate applied labels too, and the date-time inputs show their value."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from runs.models import Run
from tests.browser.conftest import sign_in

pytestmark = pytest.mark.browser

TABLE_FIT = """() => {
  const wrap = document.querySelector('.table-wrap');
  const table = wrap.querySelector('table.runs');
  const clipped = Array.from(table.querySelectorAll('.phase, .heartbeat, .stranded, .run-link'))
    .filter(el => el.scrollWidth > el.clientWidth + 1).map(el => el.textContent.trim());
  return {
    wrap: wrap.clientWidth, table: Math.ceil(table.getBoundingClientRect().width),
    wrapScroll: wrap.scrollWidth, page: document.documentElement.scrollWidth,
    viewport: window.innerWidth, clipped,
  };
}"""


@pytest.fixture
def silent_runs(demo):
    """The running run and two more whose runner went quiet (heartbeat warnings in their rows),
    with long phase and resource names."""
    running = demo["running"]
    now = timezone.now()
    Run.objects.filter(pk=running.pk).update(
        last_report_at=now - timedelta(minutes=25),
        telemetry_summary={
            "progress": 35,
            "currentPhase": "transform",
            "currentResource": "opportunity_line_items_history",
        },
    )
    for minutes in (7, 14):
        clone = Run.objects.get(pk=running.pk)
        clone.pk = None
        clone.public_id = f"{running.public_id[:-2]}{minutes:02d}"
        clone.last_report_at = now - timedelta(minutes=minutes)
        clone.save()
    return demo


@pytest.mark.parametrize("width", [1280, 1440])
def test_the_runs_table_fits_its_box_with_heartbeat_warnings(
    browser, live_server, silent_runs, operator, screenshot, width
):
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    sign_in(page, live_server, "operator")
    expect(page.locator("tbody#run-rows tr")).to_have_count(15)
    expect(page.locator(".heartbeat.is-lost")).to_have_count(2)
    expect(page.locator(".heartbeat.is-late")).to_have_count(1)
    fit = page.evaluate(TABLE_FIT)
    assert fit["wrapScroll"] <= fit["wrap"], fit
    assert fit["table"] <= fit["wrap"], fit
    assert fit["page"] <= fit["viewport"], fit
    assert fit["clipped"] == [], fit
    # Nothing is hidden to make it fit: the last column and the whole phase are on screen.
    expect(page.locator("tbody#run-rows tr .c-spark").first).to_be_in_viewport()
    expect(page.locator(f"#run-{silent_runs['running'].public_id} .phase")).to_contain_text(
        "opportunity_line_items_history"
    )
    screenshot(page, f"runs-table-fits-{width}")
    context.close()


def test_a_narrow_window_scrolls_the_table_inside_its_box(
    browser, live_server, silent_runs, operator
):
    context = browser.new_context(viewport={"width": 1000, "height": 900})
    page = context.new_page()
    sign_in(page, live_server, "operator")
    expect(page.locator("tbody#run-rows tr")).to_have_count(15)
    fit = page.evaluate(TABLE_FIT)
    # The page itself never scrolls sideways; the table's box does when it must.
    assert fit["page"] <= fit["viewport"], fit
    assert fit["clipped"] == [], fit
    context.close()


def test_the_label_not_toggle_negates_labels_already_applied(page, live_server, demo, operator):
    Run.objects.filter(pipeline=demo["crm"]).update(labels={"team": "finance"})
    sign_in(page, live_server, "operator", path="/runs/?label=team:finance")
    rows = page.locator("tbody#run-rows tr")
    expect(rows).to_have_count(7)
    chip = page.locator("[data-label-filter]")
    expect(chip).to_have_count(1)
    toggle = page.locator("#f-not-label")
    expect(toggle).not_to_be_checked()

    toggle.check()
    expect(page).to_have_url(re.compile(r"/runs/\?excludeLabel=team%3Afinance$"))
    expect(rows).to_have_count(6)
    for cell in rows.locator(".c-pipeline").all():
        expect(cell).to_have_text("billing_events")
    expect(chip).to_have_class(re.compile("is-negated"))
    assert chip.evaluate('e => getComputedStyle(e, "::before").content') == '"not "'

    toggle.uncheck()
    expect(page).to_have_url(re.compile(r"/runs/\?label=team%3Afinance$"))
    expect(rows).to_have_count(7)
    expect(chip).not_to_have_class(re.compile("is-negated"))

    # Loaded from a URL that negates the label, the toggle shows it and turns it back.
    page.goto(f"{live_server.url}/runs/?excludeLabel=team:finance")
    expect(toggle).to_be_checked()
    expect(rows).to_have_count(6)
    toggle.uncheck()
    expect(page).to_have_url(re.compile(r"/runs/\?label=team%3Afinance$"))
    expect(rows).to_have_count(7)


def test_every_not_toggle_and_the_field_it_negates_have_a_name(page, live_server, demo, operator):
    sign_in(page, live_server, "operator")
    for selector, name in [
        ("#f-not-status", "Not these statuses"),
        ("#f-not-pipeline", "Not this pipeline"),
        ("#f-not-gateway", "Not this gateway"),
        ("#f-not-trigger", "Not this trigger"),
        ("#f-not-label", "Not these labels"),
    ]:
        expect(page.locator(selector)).to_have_accessible_name(name)
    # The fields keep their own names beside the toggles.
    for selector, name in [
        ("#f-pipeline", "Pipeline"),
        ("#f-gateway", "Gateway"),
        ("#f-trigger", "Trigger"),
        ("#f-label", "Label (key:value)"),
    ]:
        expect(page.locator(selector)).to_have_accessible_name(name)
    expect(page.get_by_role("checkbox", name="not", exact=True)).to_have_count(0)


INTRINSIC_WIDTH = """(input) => {
  const probe = input.cloneNode();
  probe.removeAttribute('id');
  probe.style.cssText = 'position: absolute; width: auto; min-width: 0; max-width: none;';
  document.body.appendChild(probe);
  const needed = probe.getBoundingClientRect().width;
  probe.remove();
  return [input.getBoundingClientRect().width, needed];
}"""


def test_the_from_and_to_inputs_are_wide_enough_for_their_whole_value(
    page, live_server, demo, operator, screenshot
):
    sign_in(page, live_server, "operator")
    for selector in ("#f-from", "#f-to"):
        page.fill(selector, "2026-12-01T23:45:12")
        shown, needed = page.locator(selector).evaluate(INTRINSIC_WIDTH)
        # The browser's own width for the field is the one that fits "12/01/2026, 11:45:12 PM".
        assert shown >= needed - 0.5, (selector, shown, needed)
    screenshot(
        page, "runs-filters-date-inputs", clip={"x": 0, "y": 40, "width": 1280, "height": 220}
    )


def test_a_refused_filter_in_debug_keeps_the_runs_page_whole(
    page, live_server, demo, operator, settings
):
    # DEBUG adds django-htmx's error handler, which used to put any 400 in place of the document.
    settings.DEBUG = True
    sign_in(page, live_server, "operator")
    expect(page.locator("tbody#run-rows tr")).to_have_count(13)
    page.fill("#f-label", "team:" + "x" * 201)
    page.locator("#f-label").press("Enter")
    expect(page.locator("#run-table .alert-error")).to_contain_text(
        "A label value is at most 200 characters."
    )
    expect(page.locator("header.topbar")).to_be_visible()
    expect(page.locator("form#filters")).to_be_visible()
    expect(page.locator("#filter-status")).to_be_hidden()
