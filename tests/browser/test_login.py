"""Logging in and out in a real browser, for every role."""

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import log_in
from tests.factories import UserFactory


@pytest.mark.parametrize("role", ["Viewer", "Staff", "Admin"])
def test_every_role_logs_in_and_out(new_page, live_server, role):
    user = UserFactory(role=role)
    page = new_page()
    page.goto("/clients/")
    # Anonymous visitors are sent to the login form, which brings them back afterwards.
    expect(page).to_have_url(f"{live_server.url}/login/?next=/clients/")
    log_in(page, user.username)
    expect(page.locator("h1")).to_have_text("Clients")
    expect(page.locator(".whoami")).to_contain_text(user.username)
    expect(page.locator(".whoami")).to_contain_text(role)
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(f"{live_server.url}/login/")
    page.goto("/clients/")
    expect(page).to_have_url(f"{live_server.url}/login/?next=/clients/")
    assert page.js_errors == []


def test_the_browser_language_and_the_switch_choose_the_language(new_page):
    user = UserFactory(role="Viewer")
    french_browser = new_page(lang="fr")
    french_browser.goto("/login/")
    expect(french_browser.get_by_role("button", name="Se connecter")).to_be_visible()

    page = new_page(lang="en")
    page.goto("/login/")
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    page.get_by_role("button", name="Français").click()
    expect(page.locator("html")).to_have_attribute("lang", "fr")
    page.get_by_label("Identifiant").fill(user.username)
    page.get_by_label("Mot de passe").fill("secret-pass-123")
    page.get_by_role("button", name="Se connecter").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Clients")
    expect(page.get_by_role("link", name="Prospects")).to_be_visible()
    expect(page.locator(".whoami")).to_contain_text("Lecteur")

    # Back to English from the menu, staying on the same page.
    page.get_by_role("link", name="Prospects").click()
    page.get_by_role("button", name="English").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator(".tabs [aria-current=page]")).to_contain_text("Leads")
    expect(page.get_by_role("button", name="Log out")).to_be_visible()
    assert page.js_errors == []
