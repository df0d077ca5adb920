"""What each role does in the back office, in a real browser."""

import re

from playwright.sync_api import Page, expect

from tests.browser.shop import build_shop


def rows(page: Page):
    return page.locator("table.data tbody tr")


def test_viewer_browses_both_tabs_and_opens_a_client_and_an_order(page_as):
    shop = build_shop()
    page = page_as("Viewer")
    expect(page.get_by_role("heading", level=1)).to_have_text("Clients")
    expect(rows(page)).to_have_count(25)
    expect(page.locator(".pagination")).to_contain_text("Rows 1–25 of 31")

    # Sort by total spent, ascending then descending.
    page.get_by_role("link", name="Total spent").click()
    expect(page).to_have_url(re.compile(r"sort=total_spent"))
    expect(page.locator("th[aria-sort=ascending]")).to_contain_text("Total spent")
    expect(rows(page).first).to_contain_text(shop.clients[0].email)
    page.get_by_role("link", name="Total spent").click()
    expect(page.locator("th[aria-sort=descending]")).to_contain_text("Total spent")
    expect(rows(page).first).to_contain_text(shop.star.email)

    # Pages: the next page holds the remaining rows, in the same order.
    page.get_by_role("link", name="Next").click()
    expect(page).to_have_url(re.compile(r"page=2"))
    expect(rows(page)).to_have_count(6)
    expect(page.locator(".pagination")).to_contain_text("Rows 26–31 of 31")

    # Search, accents and case ignored.
    page.get_by_label("Search").fill("zephyrine")
    page.get_by_label("Search").press("Enter")
    expect(rows(page)).to_have_count(1)
    expect(rows(page).first).to_contain_text("Zéphyrine Lefèvre")

    # Filters: clients with at least 4 orders.
    page.get_by_role("link", name="Clear all").first.click()
    page.locator("details.filters summary").click()
    page.get_by_label("Orders from", exact=True).fill("4")
    page.get_by_role("button", name="Apply filters").click()
    expect(page).to_have_url(re.compile(r"orders_min=4"))
    expected = 1 + sum(1 for c in shop.clients if c.orders_count >= 4)
    expect(rows(page)).to_have_count(expected)

    # The Leads tab.
    page.get_by_role("navigation", name="Customer lists").get_by_role("link", name="Leads").click()
    expect(page.locator(".tabs [aria-current=page]")).to_contain_text("Leads")
    expect(rows(page)).to_have_count(len(shop.leads))
    expect(rows(page).first).to_contain_text("Prospect")

    # A client's page, with no way to edit anything.
    page.get_by_role("navigation", name="Customer lists").get_by_role(
        "link", name="Clients"
    ).click()
    page.get_by_label("Search").fill(shop.star.email)
    page.get_by_label("Search").press("Enter")
    page.get_by_role("link", name="Zéphyrine Lefèvre").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Zéphyrine Lefèvre")
    expect(page.locator("#orders tbody tr")).to_have_count(4)
    expect(
        page.locator("a[href*='/contact/'], a[href*='/note/'], a[href*='addresses/']")
    ).to_have_count(0)
    expect(page.locator("main form[method=post]")).to_have_count(0)

    # One of its orders.
    page.locator("#orders").get_by_role("link", name="Z0").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Order Z0")
    expect(page.locator("tfoot .grand-total")).to_contain_text("€1,234.56")
    expect(page.locator("main form[method=post]")).to_have_count(0)
    assert page.js_errors == []


def test_staff_edits_contact_default_addresses_and_note(page_as):
    shop = build_shop(clients=2, leads=0)
    page = page_as("Staff")
    page.goto(shop.star.get_absolute_url())

    # Contact: the email is shown but cannot be edited.
    page.get_by_role("link", name="Edit contact").click()
    contact = page.locator("#contact")
    expect(contact.get_by_label("Email")).to_be_disabled()
    contact.get_by_label("First name").fill("Zoé")
    contact.get_by_label("Phone").fill("+33 1 23 45 67 89")
    contact.get_by_role("button", name="Save").click()
    expect(contact.get_by_role("status")).to_have_text("Contact saved.")
    expect(contact).to_contain_text("+33 1 23 45 67 89")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Zoé Lefèvre")

    # Default addresses: billing moves to the Lyon address.
    addresses = page.locator("#addresses")
    addresses.get_by_role("link", name="Change default address").click()
    billing = addresses.locator("input[name=billing]")
    expect(billing).to_have_count(2)
    billing.nth(1).check()
    addresses.get_by_role("button", name="Save").click()
    expect(addresses.get_by_role("status")).to_have_text("Default addresses saved.")
    expect(addresses.locator(".address-pair > div").first).to_contain_text("Lyon")
    expect(addresses.locator(".address-pair > div").nth(1)).to_contain_text("Paris")

    # The note, written then rewritten; both versions are kept.
    note = page.locator("#note")
    note.get_by_role("link", name="Edit note").click()
    note.get_by_role("textbox").fill("Prefers delivery before noon.")
    note.get_by_role("button", name="Save").click()
    expect(note.get_by_role("status")).to_have_text("Note saved.")
    expect(note.locator(".note-text")).to_have_text("Prefers delivery before noon.")
    note.get_by_role("link", name="Edit note").click()
    expect(note.get_by_role("textbox")).to_have_value("Prefers delivery before noon.")
    note.get_by_role("textbox").fill("Prefers delivery after 2 pm.")
    note.get_by_role("button", name="Save").click()
    expect(note.locator(".note-text").first).to_have_text("Prefers delivery after 2 pm.")
    note.get_by_role("link", name=re.compile("Show all 2 versions")).click()
    versions = note.locator(".note-versions li")
    expect(versions).to_have_count(2)
    expect(versions.first).to_contain_text("Prefers delivery after 2 pm.")
    expect(versions.nth(1)).to_contain_text("Prefers delivery before noon.")

    # Every change is in the history, refreshed without reloading.
    history = page.locator("#history")
    expect(history).to_contain_text("Contact changed")
    expect(history).to_contain_text("Default addresses changed")
    expect(history).to_contain_text("Note saved")
    assert page.js_errors == []


def test_staff_sees_the_conflict_when_another_tab_saved_first(page_as):
    shop = build_shop(clients=1, leads=0)
    first = page_as("Staff")
    second = first.context.new_page()
    for page in (first, second):
        page.goto(shop.star.get_absolute_url())
        page.get_by_role("link", name="Edit contact").click()
        expect(page.locator("#contact").get_by_label("Last name")).to_be_visible()

    second.locator("#contact").get_by_label("Last name").fill("Lefebvre")
    second.locator("#contact").get_by_role("button", name="Save").click()
    expect(second.locator("#contact").get_by_role("status")).to_have_text("Contact saved.")

    contact = first.locator("#contact")
    contact.get_by_label("Phone").fill("+33 7 81 23 45 67")
    contact.get_by_role("button", name="Save").click()
    alert = contact.get_by_role("alert")
    expect(alert).to_contain_text("Not saved")
    expect(alert).to_contain_text(first.user.username)
    expect(alert).to_contain_text("Lefebvre")
    # What the user typed is kept: saving again, knowingly, replaces the other change.
    expect(contact.get_by_label("Phone")).to_have_value("+33 7 81 23 45 67")
    expect(contact.get_by_label("Last name")).to_have_value("Lefèvre")
    contact.get_by_role("button", name="Save").click()
    expect(contact.get_by_role("status")).to_have_text("Contact saved.")
    expect(contact).to_contain_text("+33 7 81 23 45 67")
    expect(first.get_by_role("heading", level=1)).to_contain_text("Zéphyrine Lefèvre")
