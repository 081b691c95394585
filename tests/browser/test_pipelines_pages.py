"""The pipelines pages in headless Chromium: the list's filter form and one pipeline's charts."""

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import sign_in

pytestmark = pytest.mark.browser

# Well formed to the form's own pattern, refused by the server (a value is at most 200 characters).
TOO_LONG_LABEL = "team:" + "x" * 201


@pytest.mark.parametrize("debug", [False, True], ids=["production", "debug"])
def test_a_refused_label_is_an_inline_error_and_the_page_stays(
    page, live_server, demo, operator, settings, debug
):
    # DEBUG adds django-htmx's error handler, which used to replace the document with the 400.
    settings.DEBUG = debug
    sign_in(page, live_server, "operator", path="/pipelines/")
    rows = page.locator("tbody#pipeline-rows tr")
    expect(rows).to_have_count(2)
    error = page.locator("#pipeline-filters #p-label-error")
    expect(error).to_be_hidden()

    page.fill("#p-label", TOO_LONG_LABEL)
    page.locator("#p-label").press("Enter")
    expect(error).to_have_text("A label value is at most 200 characters.")
    expect(error).to_be_visible()
    # The page around the form is intact: the top bar, the form with what was typed.
    expect(page.locator("header.topbar")).to_be_visible()
    expect(page.locator("#pipeline-filters")).to_be_visible()
    expect(page.locator("#p-label")).to_have_value(TOO_LONG_LABEL)
    expect(page.locator("#pipeline-table")).to_be_attached()
    expect(rows).to_have_count(0)

    # Fixing it clears the error and brings the rows back, in place.
    page.fill("#p-label", "")
    page.get_by_role("button", name="Apply").click()
    expect(error).to_be_hidden()
    expect(rows).to_have_count(2)
    expect(page.locator("header.topbar")).to_be_visible()


def test_a_refused_label_is_an_inline_error_without_javascript(
    browser, live_server, demo, operator
):
    context = browser.new_context(
        viewport={"width": 1280, "height": 900}, java_script_enabled=False
    )
    page = context.new_page()
    sign_in(page, live_server, "operator", path="/pipelines/")
    page.fill("#p-label", "team:finance")
    page.get_by_role("button", name="Apply").click()
    expect(page).to_have_url(re.compile(r"label=team%3Afinance"))
    page.goto(f"{live_server.url}/pipelines/?label=team:finance&label={TOO_LONG_LABEL}")

    error = page.locator("#pipeline-filters #p-label-error")
    expect(error).to_have_text("A label value is at most 200 characters.")
    label_input = page.locator("#p-label")
    # The refused pair is back in the box to fix; the good one stays applied as a chip.
    expect(label_input).to_have_value(TOO_LONG_LABEL)
    expect(label_input).to_have_attribute("aria-invalid", "true")
    expect(label_input).to_have_attribute("aria-describedby", "p-label-error")
    expect(page.locator("[data-label-filter]")).to_have_count(1)
    expect(page.locator("[data-label-filter]")).to_contain_text("team:finance")
    expect(page.locator("header.topbar")).to_be_visible()
    context.close()


@pytest.mark.parametrize("width", [1280, 1680])
def test_the_rows_and_bytes_charts_are_side_by_side_and_as_wide(
    browser, live_server, demo, operator, screenshot, width
):
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    sign_in(page, live_server, "operator", path=f"/pipelines/{demo['crm'].public_id}/")
    rows = page.locator("section[aria-labelledby=rows-title]").bounding_box()
    sizes = page.locator("section[aria-labelledby=bytes-title]").bounding_box()
    assert abs(rows["y"] - sizes["y"]) < 1, (rows, sizes)
    assert abs(rows["width"] - sizes["width"]) < 1, (rows, sizes)
    rows_chart = page.locator("section[aria-labelledby=rows-title] svg").bounding_box()
    bytes_chart = page.locator("section[aria-labelledby=bytes-title] svg").bounding_box()
    assert abs(rows_chart["width"] - bytes_chart["width"]) < 1, (rows_chart, bytes_chart)
    screenshot(page, f"pipeline-detail-charts-{width}", full_page=True)
    context.close()
