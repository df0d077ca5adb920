"""Markup in every cell: the Clients and Leads rows, their headers and the client page's order
history put what customers and orders hold on the page as text, never as markup, and every
link they draw stays a link into the back office.

Each text column gets the same hostile value (a tag, an ampersand, both quotes and a
`javascript:` URL); the checks parse the rendered table rather than search for substrings,
so an attribute broken open or a tag let through fails whatever its spelling.
"""

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.conf import settings
from django.test import override_settings

from clients.models import Customer
from orders.models import Order
from tests.factories import CustomerFactory, make_order

pytestmark = pytest.mark.django_db

HOSTILE = "<xss>x</xss> & \"q\" 'a' javascript:alert(1)"
# Order numbers hold 32 characters and currencies 3.
HOSTILE_NUMBER = "<xss>\"'&javascript:x"
HOSTILE_CURRENCY = '<&"'
# An attribute the markup itself writes (an injected one would carry quotes, spaces or colons
# from the data in its name, or be an event handler).
ATTRIBUTE_NAME = re.compile(r"^(?!on)[a-z][a-z-]*$")


class TableParser(HTMLParser):
    """The tags, attributes and text of the first <table> of a page (its rows and headers)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.depth = 0
        self.done = False
        self.tags, self.attrs, self.text = [], [], []

    def handle_starttag(self, tag, attrs):
        if self.done or (self.depth == 0 and tag != "table"):
            return
        if tag == "table":
            self.depth += 1
        self.tags.append(tag)
        self.attrs += [(tag, name, value or "") for name, value in attrs]

    def handle_endtag(self, tag):
        if self.depth and tag == "table":
            self.depth -= 1
            self.done = self.depth == 0

    def handle_data(self, data):
        if self.depth and not self.done:
            self.text.append(data)


def parse_table(html: str, section: str = "") -> TableParser:
    """The table of the page, or of the element whose id="section" opens it."""
    if section:
        html = html[html.index(f'id="{section}"') :]
    parser = TableParser()
    parser.feed(html)
    assert parser.tags, "no table on the page"
    return parser


def assert_safe(table: TableParser, *, shown: list[str]) -> None:
    # No tag from the data.
    assert "xss" not in table.tags and "script" not in table.tags, table.tags
    for tag, name, value in table.attrs:
        # No attribute injected by breaking out of a quoted value.
        assert ATTRIBUTE_NAME.match(name), (tag, name, value)
        if name in ("href", "data-href"):
            # A link, or a row that opens the client page (static/js/app.js), goes to a page
            # of the back office (a path, or this page's query string).
            assert value.startswith(("/", "?")) and not value.startswith("//"), value
            assert "javascript:" not in value.lower()
            assert not any(c in value for c in "<>\"' "), value
    text = "".join(table.text)
    for value in shown:
        assert value in text  # shown literally, not dropped or cut


@pytest.fixture
def hostile_client():
    customer = CustomerFactory(
        first_name=HOSTILE,
        last_name=HOSTILE,
        email=f"{HOSTILE}@example.com",
        push_opt_in=True,
    )
    make_order(
        customer,
        number=HOSTILE_NUMBER,
        total="12.50",
        refunded="2.50",
        source=HOSTILE,
        medium=HOSTILE,
    )
    return Customer.objects.get(pk=customer.pk)


@pytest.mark.parametrize("language", ["en", "fr"])
def test_every_cell_of_the_clients_rows_is_escaped(admin_client_role, hostile_client, language):
    with override_settings(SHOP_CURRENCY=HOSTILE_CURRENCY):
        response = admin_client_role.get("/clients/", HTTP_ACCEPT_LANGUAGE=language)
    html = response.content.decode()
    table = parse_table(html)
    assert_safe(
        table,
        shown=[
            f"{HOSTILE} {HOSTILE}",  # name
            f"{HOSTILE}@example.com",  # email
            f"{HOSTILE} / {HOSTILE}",  # source / medium
            HOSTILE_NUMBER,  # last order's number
            HOSTILE_CURRENCY,  # amount (in a currency whose code is markup)
        ],
    )
    # The push checkbox is drawn (an Admin may send), and the order link is the order's page.
    assert ("input", "value", str(hostile_client.pk)) in table.attrs
    hrefs = {value for tag, name, value in table.attrs if name == "href"}
    assert "/orders/%3Cxss%3E%22%27%26javascript%3Ax/" in hrefs
    assert f"/clients/{hostile_client.pk}/" in hrefs


def test_nameless_customers_and_leads_rows_are_escaped(viewer_client):
    CustomerFactory(first_name="", last_name="", email=f"{HOSTILE}@example.com")
    table = parse_table(viewer_client.get("/clients/leads/").content.decode())
    assert_safe(table, shown=["—", f"{HOSTILE}@example.com"])


def test_hostile_query_strings_stay_inside_the_header_links(viewer_client, hostile_client):
    params = {
        "q": HOSTILE,
        "source": '"><script>alert(1)</script>',
        "sort": "-name",
        "extra": "javascript:alert(1)",
    }
    response = viewer_client.get("/clients/", params)
    table = parse_table(response.content.decode())
    assert_safe(table, shown=[])
    headers = [value for tag, name, value in table.attrs if tag == "a" and value.startswith("?")]
    assert len(headers) == 7  # one sort link per sortable column, each a query string


@pytest.mark.parametrize("language", ["en", "fr"])
def test_every_cell_of_the_order_history_is_escaped(viewer_client, hostile_client, language):
    Order.objects.filter(customer=hostile_client).update(
        currency=HOSTILE_CURRENCY, status='paid" onclick="x'
    )
    response = viewer_client.get(f"/clients/{hostile_client.pk}/", HTTP_ACCEPT_LANGUAGE=language)
    assert response.status_code == 200
    table = parse_table(response.content.decode(), section="orders")
    assert_safe(
        table,
        shown=[
            HOSTILE_NUMBER,
            f"{HOSTILE} / {HOSTILE}",  # source / medium
            HOSTILE_CURRENCY,  # the amount and the refunded amount
            'paid" onclick="x',  # an unknown status is shown as stored
        ],
    )
    classes = [value for tag, name, value in table.attrs if name == "class"]
    assert 'badge badge-paid" onclick="x' in classes  # one attribute, not two
    hrefs = {value for tag, name, value in table.attrs if name == "href"}
    assert hrefs == {"/orders/%3Cxss%3E%22%27%26javascript%3Ax/"}


def test_no_markup_is_declared_safe_outside_format_html():
    """Escaping stays Django's: no mark_safe/SafeString in the product code and no |safe or
    autoescape off in the templates (format_html, which escapes its arguments, is the way)."""
    root = Path(settings.BASE_DIR)
    offenders = []
    for app in ("backoffice", "clients", "orders", "notifications"):
        for path in (root / app).rglob("*.py"):
            text = path.read_text()
            offenders += [f"{path}: {w}" for w in ("mark_safe", "SafeString") if w in text]
    for path in (root / "templates").rglob("*.html"):
        text = path.read_text()
        offenders += [f"{path}: {w}" for w in ("|safe", "autoescape off") if w in text]
    assert offenders == []
