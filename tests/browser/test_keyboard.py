"""The main journey with the keyboard only: no mouse click anywhere."""

from playwright.sync_api import Page, expect

from tests.browser.shop import build_shop

MAX_TABS = 80


def tab_to(page: Page, locator, *, backwards: bool = False) -> None:
    """Press Tab (or Shift+Tab) until `locator` has the focus, as a keyboard user would."""
    for _ in range(MAX_TABS):
        if locator.evaluate("el => el === document.activeElement"):
            return
        page.keyboard.press("Shift+Tab" if backwards else "Tab")
    raise AssertionError(f"{locator} never got the focus with the keyboard")


def focused_is_visible(page: Page) -> bool:
    """The focused element shows where the keyboard is (an outline or a box shadow)."""
    return page.evaluate(
        """() => {
            const el = document.activeElement;
            const style = getComputedStyle(el);
            const box = el.getBoundingClientRect();
            return box.width > 0 && box.height > 0 &&
                (style.outlineStyle !== "none" || style.boxShadow !== "none");
        }"""
    )


def test_search_open_a_client_and_edit_the_contact_with_the_keyboard(page_as):
    shop = build_shop(clients=5, leads=1)
    page = page_as("Staff")
    page.goto("/clients/")

    # The skip link comes first and leads to the content.
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    assert focused_is_visible(page)
    page.keyboard.press("Enter")

    search = page.get_by_label("Search")
    tab_to(page, search)
    assert focused_is_visible(page)
    page.keyboard.type("zephyrine")
    page.keyboard.press("Enter")
    expect(page.locator("table.data tbody tr")).to_have_count(1)

    client = page.get_by_role("link", name="Zéphyrine Lefèvre")
    tab_to(page, client)
    assert focused_is_visible(page)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Zéphyrine Lefèvre")
    assert page.url.endswith(shop.star.get_absolute_url())

    edit = page.get_by_role("link", name="Edit contact")
    tab_to(page, edit)
    assert focused_is_visible(page)
    page.keyboard.press("Enter")
    # The editor opens where the user is: the focus moves to its first field.
    first_name = page.locator("#contact").get_by_label("First name")
    expect(first_name).to_be_focused()
    page.keyboard.press("ControlOrMeta+a")
    page.keyboard.type("Zoé")
    save = page.locator("#contact").get_by_role("button", name="Save")
    tab_to(page, save)
    page.keyboard.press("Enter")
    expect(page.locator("#contact").get_by_role("status")).to_have_text("Contact saved.")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Zoé Lefèvre")
    # And the focus comes back to the card's edit control, not to the top of the page.
    expect(page.get_by_role("link", name="Edit contact")).to_be_focused()
    assert page.js_errors == []
