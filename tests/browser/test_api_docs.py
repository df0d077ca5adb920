"""The storefront API's documentation page in a real browser, under the real Content Security
Policy: the vendored Swagger UI renders every operation from the generated schema, without a
script or style the policy blocks."""

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_docs_page_renders_the_schema_under_the_csp(new_page):
    page = new_page()
    page.goto("/api/v1/docs")
    expect(page.locator(".opblock").first).to_be_visible()
    assert page.locator(".opblock").count() >= 10
    expect(page.get_by_text("/api/v1/customers", exact=True).first).to_be_visible()
    assert page.js_errors == []
