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
