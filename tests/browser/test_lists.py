"""The Clients and Leads tabs as issue 17's new user met them, in both languages and at both
sizes: the search finds what was typed, the push selection sits in the last column and lasts
across pages and sorts, whole rows open the client page, and phones show every column that
matters without scrolling sideways."""

import re

import pytest
from playwright.sync_api import Page, expect

from clients.models import Customer
from tests.browser.conftest import DESKTOP, MOBILE
from tests.browser.shop import build_shop
from tests.browser.test_pages import SCREENSHOTS
from tests.browser.test_push import push_service as push_service  # the fixture
from tests.browser.test_push import subscribe

VIEWPORTS = {"desktop": DESKTOP, "phone": MOBILE}
BOTH = pytest.mark.parametrize(
    ("lang", "size"), [(lang, size) for lang in ("en", "fr") for size in VIEWPORTS]
)
TEXT = {
    "en": {
        "search": "Search",
        "select": "Select client {}",
        "page": "Select every customer of this page who accepts push",
        "selected": "the selected",
        "clear": "Clear selection",
        "in_leads": "1 match in Leads",
        "in_clients": "1 match in Clients",
        "next": "Next",
        "total": "Total spent",
        "compose": "Send a push",
        "audience": "3 customers",
    },
    "fr": {
        "search": "Rechercher",
        "select": "Sélectionner le client {}",
        "page": "Sélectionner tous les clients de cette page qui acceptent le push",
        "selected": "la sélection",
        "clear": "Vider la sélection",
        "in_leads": "1 résultat dans Prospects",
        "in_clients": "1 résultat dans Clients",
        "next": "Suivante",
        "total": "Total dépensé",
        "compose": "Envoyer un push",
        "audience": "3 clients",
    },
}


def rows(page: Page):
    return page.locator("table.customer-list tbody tr")


def row_ids(page: Page) -> list[int]:
    return [int(t.lstrip("#")) for t in page.locator("td.cell-id a").all_inner_texts()]


def search(page: Page, text: str) -> None:
    page.locator("#id_q").fill(text)
    page.locator("#id_q").press("Enter")
    page.wait_for_load_state()


def stored(page: Page, action: str):
    """Waits for the server's answer to the selection change `action` the block makes. The
    page shows a tick at once and posts it in the background; leaving the page before the
    answer (as the next step does) may drop the request, and on a busy machine it does."""
    return page.expect_response(
        lambda response: (
            response.request.method == "POST"
            and "/selection/" in response.url
            and f"action={action}" in (response.request.post_data or "")
        )
    )


def no_sideways_scroll(page: Page) -> None:
    overflow = page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    if overflow > 0:
        # Say which elements stick out, to know what to fix.
        culprits = page.evaluate(
            """() => Array.from(document.querySelectorAll("body *"))
                .filter(e => e.getBoundingClientRect().right
                             > document.documentElement.clientWidth)
                .slice(0, 8)
                .map(e => `${e.tagName}.${e.className}: ${e.textContent.trim().slice(0, 30)}`)"""
        )
        raise AssertionError(f"{overflow}px of horizontal scroll at {page.url}: {culprits}")


@BOTH
def test_search_finds_what_the_user_typed(page_as, lang, size):
    shop = build_shop(clients=30, leads=6)
    star = shop.star
    page = page_as("Viewer", lang=lang, viewport=VIEWPORTS[size])

    # The Client ID as the column writes it.
    search(page, f"#{star.pk}")
    assert row_ids(page) == [star.pk]
    # The name surname first.
    search(page, "lefevre zephyrine")
    assert row_ids(page) == [star.pk]
    # Digits that are a client ID, and also in other IDs, phones and e-mails: the ID first.
    digits = str(shop.clients[2].pk)
    search(page, digits)
    ids = row_ids(page)
    assert ids[0] == shop.clients[2].pk and len(ids) > 1
    # A client looked for on the Leads tab: the link says where it is.
    page.goto(f"/clients/leads/?q={star.last_name}")
    expect(rows(page)).to_have_count(1)  # the "no customer matches" row
    link = page.get_by_role("link", name=TEXT[lang]["in_clients"])
    link.click()
    page.wait_for_url(re.compile(r"/clients/\?q="))
    assert row_ids(page) == [star.pk]
    search(page, shop.leads[0].last_name)
    page.get_by_role("link", name=TEXT[lang]["in_leads"]).click()
    page.wait_for_url(re.compile(r"/clients/leads/\?q="))
    assert row_ids(page) == [shop.leads[0].pk]
    no_sideways_scroll(page)
    assert page.js_errors == []


@BOTH
def test_selection_in_the_last_column_lasts_across_pages_and_sorts(
    page_as, push_service, lang, size
):
    shop = build_shop(clients=30, leads=2)
    by_id = sorted(shop.clients, key=lambda c: c.pk)
    # Push-accepting clients on both pages of the list sorted by id (25 a page).
    accepting = [by_id[0], by_id[1], by_id[2], by_id[27]]
    for customer in accepting:
        subscribe(push_service, customer)
    page = page_as("Admin", lang=lang, viewport=VIEWPORTS[size])
    text = TEXT[lang]
    page.goto("/clients/?sort=id")
    send = page.get_by_role("button", name=re.compile("^" + text["selected"]))
    expect(send).to_be_disabled()

    # The checkboxes are the last cell of their rows.
    first_row = rows(page).first
    expect(first_row.locator("td").last.locator("input.row-select")).to_have_count(1)
    if size == "desktop":
        boxes = page.locator("input.row-select").evaluate_all(
            "els => els.map(e => e.getBoundingClientRect().left)"
        )
        cells = first_row.locator("td").evaluate_all(
            "els => els.map(e => e.getBoundingClientRect().left)"
        )
        assert min(boxes) >= max(cells[:-1])

    # The header box ticks every push-accepting row of the page.
    page.get_by_label(text["page"]).check()
    expect(send).to_contain_text("(3)")
    for customer in accepting[:3]:
        expect(
            page.get_by_label(exact=True, text=text["select"].format(customer.pk))
        ).to_be_checked()
    with stored(page, "remove"):
        page.get_by_label(exact=True, text=text["select"].format(accepting[1].pk)).uncheck()
    expect(send).to_contain_text("(2)")
    expect(page.get_by_label(text["page"])).to_have_js_property("indeterminate", True)

    # Page 2: the count stays; tick one more there.
    page.get_by_role("link", name=text["next"], exact=True).click()
    page.wait_for_url(re.compile("page=2"))
    expect(send).to_contain_text("(2)")
    with stored(page, "add"):
        page.get_by_label(exact=True, text=text["select"].format(accepting[3].pk)).check()
    expect(send).to_contain_text("(3)")
    expect(page.locator("[data-selection-status]")).to_contain_text("3")

    # Another sort (and page size): the ticks are still there.
    page.goto("/clients/?sort=-id&per_page=50")
    expect(send).to_contain_text("(3)")
    expect(
        page.get_by_label(exact=True, text=text["select"].format(accepting[3].pk))
    ).to_be_checked()
    expect(
        page.get_by_label(exact=True, text=text["select"].format(accepting[0].pk))
    ).to_be_checked()
    expect(
        page.get_by_label(exact=True, text=text["select"].format(accepting[1].pk))
    ).not_to_be_checked()
    no_sideways_scroll(page)

    # The compose page gets all three, from both pages.
    send.click()
    expect(page.get_by_role("heading", level=1)).to_have_text(text["compose"])
    expect(page.locator(".push-audience")).to_contain_text(text["audience"])
    page.go_back()
    with stored(page, "clear"):
        page.get_by_role("button", name=text["clear"]).click()
    expect(send).to_be_disabled()
    expect(page.locator("input.row-select:checked")).to_have_count(0)
    page.reload()
    expect(page.locator("input.row-select:checked")).to_have_count(0)
    assert page.js_errors == []


@BOTH
def test_whole_rows_open_the_client_page(page_as, push_service, lang, size):
    shop = build_shop(clients=4, leads=1)
    target = shop.clients[1]
    subscribe(push_service, target)
    page = page_as("Admin", lang=lang, viewport=VIEWPORTS[size])
    row = rows(page).filter(has=page.locator(f'a[href="/clients/{target.pk}/"]'))

    # The checkbox ticks, and its whole cell does, without leaving the page.
    box = row.locator("input.row-select")
    box.check()
    expect(box).to_be_checked()
    row.locator("td.select-col label").click(position={"x": 3, "y": 3})
    expect(box).not_to_be_checked()
    assert page.url.endswith("/clients/")

    # The last order's link goes to the order.
    order = Customer.objects.get(pk=target.pk).last_order
    row.locator("td.cell-order a").click()
    page.wait_for_url(f"**/orders/{order.number}/")
    page.go_back()

    # A click on any cell without a link opens the client page.
    row.locator("td.cell-spent").click()
    page.wait_for_url(f"**/clients/{target.pk}/")
    page.go_back()
    row.locator("td.cell-since").click()
    page.wait_for_url(f"**/clients/{target.pk}/")
    page.go_back()

    # Ctrl-click and the middle button open it in a new tab, leaving the list.
    for kwargs in ({"modifiers": ["Control"]}, {"button": "middle"}):
        with page.context.expect_page() as opened:
            row.locator("td.cell-source").click(**kwargs)
        tab = opened.value
        tab.wait_for_url(f"**/clients/{target.pk}/")
        tab.close()
        assert page.url.endswith("/clients/")

    # From the keyboard: the row's link takes the focus, the row shows it, Enter opens it.
    link = row.locator("td.cell-name a")
    link.focus()
    expect(row).to_have_css("box-shadow", re.compile("inset"))
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/clients/{target.pk}/")
    assert page.js_errors == []


@pytest.mark.parametrize("lang", ["en", "fr"])
@pytest.mark.parametrize("tab", ["/clients/", "/clients/leads/"])
def test_phones_show_the_columns_as_stacked_cells(page_as, push_service, lang, tab):
    shop = build_shop(clients=8, leads=3)
    subscribe(push_service, shop.clients[0])
    page = page_as("Admin", lang=lang, viewport=MOBILE)
    page.goto(tab)
    no_sideways_scroll(page)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    name = "leads" if "leads" in tab else "clients"
    page.screenshot(path=SCREENSHOTS / f"{name}-list-{lang}-phone.png", full_page=True)
    first = rows(page).first
    # Every cell with a value is on screen, under its column's name, inside the card.
    width = page.viewport_size["width"]
    for cell in first.locator("td").all():
        if not cell.inner_text().strip() and not cell.locator("input").count():
            continue
        expect(cell).to_be_visible()
        box = cell.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= width, cell.get_attribute("class")
    spent = first.locator("td.cell-spent")
    label = spent.evaluate("e => getComputedStyle(e, '::before').content")
    assert TEXT[lang]["total"] in label
    # Sorting stays possible: the headers are links in a wrapped bar.
    header = page.locator("table.customer-list thead")
    expect(header.get_by_role("link", name=TEXT[lang]["total"])).to_be_visible()
    assert page.js_errors == []
