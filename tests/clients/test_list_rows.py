"""clients/rows.py writes the Clients and Leads rows and column headers in Python: the same
markup, character for character, as the template it replaced (kept below as the reference),
in both languages, with and without the push selection, for every kind of row and sort."""

import pytest
from django.contrib.auth.models import User
from django.template import engines
from django.test import RequestFactory, override_settings
from django.utils import translation

from clients.listing import CustomerList
from clients.models import Customer
from clients.rows import customer_rows_html, header_cells_html
from privacy.services import customers_erase
from tests.factories import CustomerFactory, make_order

pytestmark = pytest.mark.django_db

HOSTILE = "<xss>x</xss> & \"q\" 'a' {} {0} javascript:alert(1)"

# templates/clients/client_list.html's `rows` partial before clients/rows.py.
REFERENCE = """{% load i18n %}{% translate "Accepted push" as push_title %}{% translate "Push" as push_label %}{% translate "Client ID" as l_id %}{% translate "Last order" as l_order %}{% translate "Last source" as l_source %}{% translate "Total spent" as l_spent %}{% translate "Orders" as l_orders %}{% translate "Customer since" as l_since %}{% translate "Group" as l_group %}{% for row in rows %}
<tr class="row-link" data-href="{{ row.url }}"><td class="nowrap cell-id" data-label="{{ l_id }}"><a href="{{ row.url }}">#{{ row.id }}</a></td><td class="cell-name"><a href="{{ row.url }}">{{ row.name }}</a>{% if row.push %} <span class="badge badge-push" title="{{ push_title }}">{{ push_label }}</span>{% endif %}<span class="sub">{{ row.email }}</span></td><td class="cell-order" data-label="{{ l_order }}">{% if row.order_url %}<a href="{{ row.order_url }}">{{ row.order_number }}</a><span class="sub">{{ row.order_date }}</span>{% endif %}</td><td class="cell-source" data-label="{{ l_source }}">{{ row.source }}</td><td class="num cell-spent" data-label="{{ l_spent }}">{{ row.total_spent }}</td><td class="num cell-orders" data-label="{{ l_orders }}">{{ row.orders }}</td><td class="cell-group" data-label="{{ l_group }}"><span class="badge badge-group badge-group-{{ row.group }}">{{ row.group_label }}</span></td><td class="cell-since" data-label="{{ l_since }}">{{ row.created }}</td>{% if listing.show_select %}<td class="select-col">{% if row.push %}<label class="select-hit"><input type="checkbox" name="ids" value="{{ row.id }}" form="push-form" class="row-select"{% if row.selected %} checked{% endif %}><span class="visually-hidden">{{ row.select_label }}</span></label>{% endif %}</td>{% endif %}</tr>{% endfor %}"""  # noqa: E501

# templates/clients/client_list.html's header loop before clients/rows.py.
HEADERS_REFERENCE = """{% for header in headers %}<th class="{{ header.css }}" scope="col"{% if header.aria_sort %} aria-sort="{{ header.aria_sort }}"{% endif %}>{% if header.url %}<a href="{{ header.url }}">{{ header.label }}</a>{% else %}{{ header.label }}{% endif %}</th>{% endfor %}"""  # noqa: E501


@pytest.fixture
def customers():
    """Every kind of row: hostile text everywhere, with and without push, a last order or a
    name, an erased customer, a lead."""
    hostile = CustomerFactory(
        first_name=HOSTILE, last_name=HOSTILE, email=f"{HOSTILE}@example.com", push_opt_in=True
    )
    make_order(hostile, source=HOSTILE[:40], medium=HOSTILE[:40], number="<x>\"'&{0}")
    plain = CustomerFactory(first_name="Éloïse", last_name="Ardent", push_opt_in=True)
    make_order(plain, medium="")
    make_order(CustomerFactory(first_name="", last_name="", push_opt_in=False), total="1234.5")
    erased = CustomerFactory(push_opt_in=False)
    make_order(erased)
    customers_erase(customers=Customer.objects.filter(pk=erased.pk))
    CustomerFactory(first_name="Lead", last_name=HOSTILE)
    return Customer.objects.order_by("pk")


@pytest.mark.parametrize("language", ["en", "fr"])
@pytest.mark.parametrize("show_select", [True, False])
@pytest.mark.parametrize("tab", ["clients", "leads"])
def test_rows_are_the_reference_partial_markup(customers, language, show_select, tab):
    reference = engines["django"].from_string(REFERENCE)
    with override_settings(SHOP_CURRENCY='<&"{'), translation.override(language):
        request = RequestFactory().get("/clients/")
        request.user = User.objects.create_superuser(f"su-{tab}-{show_select}-{language}")
        request.session = {}
        listing = CustomerList(request, tab=tab)
        listing.show_select = show_select
        listing.selection_ids = [customers.first().pk]
        rows = listing.rows
        assert rows, "no row to compare"
        expected = reference.render({"rows": rows, "listing": {"show_select": show_select}})
        assert customer_rows_html(rows, show_select=show_select) == expected
    if tab == "clients" and show_select:
        assert " checked>" in expected and "&lt;xss&gt;" in expected and "badge-push" in expected


@pytest.mark.parametrize("language", ["en", "fr"])
@pytest.mark.parametrize(
    "query",
    [{}, {"sort": "-name"}, {"sort": "total_spent", "page": "2"}, {"q": HOSTILE, "x": '">'}],
)
def test_headers_are_the_reference_markup(language, query):
    reference = engines["django"].from_string(HEADERS_REFERENCE)
    with translation.override(language):
        request = RequestFactory().get("/clients/", query)
        request.user = User(pk=1)
        request.session = {}
        headers = CustomerList(request, tab="clients").headers
        expected = reference.render({"headers": headers})
        assert header_cells_html(headers) == expected
    assert expected.count("<th ") == 8 and "aria-sort=" in expected
