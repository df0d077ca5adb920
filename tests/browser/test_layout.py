"""The main pages fit the common screen widths in both languages: the page itself never
scrolls sideways, the Clients and Leads lists keep their main columns and checkboxes in view
from 1280 px on, an order's amounts are readable on a phone, and the client page's figures
are not cut in the middle.

One browser page visits each page once per language and is resized in place."""

from decimal import Decimal

from playwright.sync_api import Page

from clients.services import customer_create
from tests.browser.shop import build_shop
from tests.browser.test_push import push_service as push_service  # the fixture
from tests.browser.test_push import subscribe
from tests.factories import make_order

PHONE, DESKTOPS = 390, (1024, 1280, 1366)
MAIN_COLUMNS = ("cell-id", "cell-name", "cell-order", "cell-source", "cell-spent", "cell-orders")

# Where an element sits, and whether it is in view: inside the window and inside every
# ancestor that clips what overflows it (a table's scrolling wrapper) as it is scrolled now.
IN_VIEW = """element => {
    const box = element.getBoundingClientRect();
    if (box.width === 0 || box.left < 0 || box.right > window.innerWidth) return false;
    for (let parent = element.parentElement; parent; parent = parent.parentElement) {
        if (getComputedStyle(parent).overflowX === "visible") continue;
        const clip = parent.getBoundingClientRect();
        const left = clip.left + parent.clientLeft;
        if (box.left < left - 0.5 || box.right > left + parent.clientWidth + 0.5) return false;
    }
    return true;
}"""
# The lines a text is written on.
LINES = """element => {
    const range = document.createRange();
    range.selectNodeContents(element);
    return new Set([...range.getClientRects()].map(rect => Math.round(rect.top))).size;
}"""


def page_overflow(page: Page) -> int:
    return page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )


def check_widths(page: Page, where: str, widths) -> None:
    """No page-level sideways scroll at any of `widths`."""
    for width in widths:
        page.set_viewport_size({"width": width, "height": 900})
        overflow = page_overflow(page)
        assert overflow <= 0, f"{where} at {width} px: {overflow} px of page scroll"


def in_view(page: Page, selector: str) -> bool:
    return page.locator(selector).first.evaluate(IN_VIEW)


def test_pages_fit_the_screen_without_page_scroll(page_as, push_service, live_server):
    shop = build_shop(clients=8, leads=3)
    # Longer values than the small shop's, as a real shop has them.
    lengthy = customer_create(
        email="antoinette.bonnin151@wanadoo.fr", first_name="Antoinette", last_name="Bonnin"
    )
    for total in ("2949.70", "1293.80"):
        make_order(lengthy, total=Decimal(total), source="newsletter", medium="email")
    subscribe(push_service, lengthy)
    subscribe(push_service, shop.leads[0])

    page = page_as("Admin")
    for lang in ("en", "fr"):
        page.context.add_cookies(
            [{"name": "django_language", "value": lang, "url": f"{live_server.url}/"}]
        )
        for tab in ("/clients/", "/clients/leads/"):
            page.set_viewport_size({"width": 1280, "height": 900})
            page.goto(tab)
            assert page.locator("html").get_attribute("lang") == lang
            check_widths(page, f"{tab} ({lang})", (*DESKTOPS, 1440, PHONE))
            for width in (1280, 1366, 1440):
                page.set_viewport_size({"width": width, "height": 900})
                where = f"{tab} ({lang}) at {width} px"
                assert in_view(page, "input.row-select"), f"{where}: row checkbox hidden"
                assert in_view(page, "table.customer-list thead th.select-col"), where
                row = "table.customer-list tbody tr.row-link"
                for column in MAIN_COLUMNS:
                    assert in_view(page, f"{row} td.{column}"), f"{where}: {column} hidden"

        page.goto(shop.star.get_absolute_url())
        check_widths(page, f"client page ({lang})", (PHONE, *DESKTOPS))
        # On a phone the figures (amounts, dates) stay whole, each on one line.
        page.set_viewport_size({"width": PHONE, "height": 900})
        figures = page.locator("dl.stats dd.nowrap")
        assert figures.count() >= 4
        for figure in figures.all():
            assert figure.evaluate(LINES) == 1, figure.inner_text()
            assert figure.evaluate(IN_VIEW), figure.inner_text()

        page.goto(shop.star_order.get_absolute_url())
        check_widths(page, f"order page ({lang})", (*DESKTOPS, PHONE))
        for width in (PHONE, *DESKTOPS):
            page.set_viewport_size({"width": width, "height": 900})
            amounts = page.locator("table.order-lines td.num")
            assert amounts.count() == 3 + 6  # the line's 3 numbers, then the 6 totals
            for amount in amounts.all():
                assert amount.evaluate(IN_VIEW), (
                    f"order ({lang}) at {width} px: {amount.inner_text()}"
                )
    assert page.js_errors == []
