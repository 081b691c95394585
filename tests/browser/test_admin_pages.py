"""Admin pages the app adds: a shown-once secret with a Copy button the CSP allows, breadcrumbs
styled like admin's own, and an icon (no request for a missing /favicon.ico)."""

import re

import pytest
from playwright.sync_api import expect

from gateways.models import GatewayToken
from tests.browser.conftest import PASSWORD
from tests.factories import GatewayFactory, UserFactory

pytestmark = pytest.mark.browser


def test_issued_token_page_copies_without_inline_script(browser, live_server, transactional_db):
    UserFactory(username="root", is_staff=True, is_superuser=True)
    gateway = GatewayFactory(name="edge-eu-1")
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    page = context.new_page()
    violations, missing = [], []
    page.on(
        "console",
        lambda message: "Content Security" in message.text and violations.append(message.text),
    )
    page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)

    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "root")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.goto(f"{live_server.url}/admin/gateways/gatewaytoken/add/?gateway={gateway.pk}")
    page.fill("#id_name", "primary")
    page.click("input[name=_save]")

    secret = page.locator("#issued-secret")
    expect(secret).not_to_have_value("")
    value = secret.input_value()
    assert page.locator("[onfocus]").count() == 0
    page.get_by_role("button", name="Copy").click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == value
    # Focusing the field selects the whole secret (the app's script, not an inline handler).
    page.locator("h1, #content h1").first.click()
    secret.focus()
    assert page.evaluate(
        "(() => { const i = document.getElementById('issued-secret');"
        " return i.selectionStart === 0 && i.selectionEnd === i.value.length; })()"
    )

    crumbs = page.locator("ol.breadcrumbs li")
    expect(crumbs.first).to_have_text("Home")
    assert crumbs.count() == 4
    # admin's own stylesheet lays breadcrumbs out in a row, not as a numbered list.
    assert page.evaluate(
        "getComputedStyle(document.querySelector('ol.breadcrumbs li')).display"
    ) in ("inline", "inline-block", "inline-flex", "flex")
    assert page.locator("link[rel=icon]").count() == 1
    assert violations == [], violations
    assert not [url for url in missing if url.endswith("favicon.ico")], missing
    context.close()


def test_reloading_the_issued_token_page_neither_issues_nor_shows_it_again(
    page, live_server, transactional_db, screenshot
):
    UserFactory(username="root", is_staff=True, is_superuser=True)
    gateway = GatewayFactory(name="edge-eu-1")
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "root")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.goto(f"{live_server.url}/admin/gateways/gatewaytoken/add/?gateway={gateway.pk}")
    page.fill("#id_name", "primary")
    page.click("input[name=_save]")

    token = GatewayToken.objects.get(gateway=gateway)
    # POST, redirect, GET: the secret is on a page of its own, not the answer to the POST.
    expect(page).to_have_url(f"{live_server.url}/admin/gateways/gatewaytoken/{token.pk}/issued/")
    secret = page.locator("#issued-secret")
    expect(secret).to_have_value(re.compile(r"^gwt_"))
    assert secret.input_value().startswith(token.prefix)
    screenshot(page, "admin-token-issued")

    page.reload()
    expect(page).to_have_url(f"{live_server.url}/admin/gateways/gatewaytoken/{token.pk}/change/")
    expect(page.locator("#issued-secret")).to_have_count(0)
    expect(page.locator(".messagelist")).to_contain_text("was shown once and cannot be shown again")
    assert GatewayToken.objects.filter(gateway=gateway).count() == 1
    screenshot(page, "admin-token-issued-reloaded")

    page.go_back()
    expect(page.locator("#issued-secret")).to_have_count(0)
    assert GatewayToken.objects.filter(gateway=gateway).count() == 1
