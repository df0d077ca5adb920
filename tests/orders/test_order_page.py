"""The order page, /orders/<number>/."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from clients.services import address_create, address_update
from orders.models import OrderLine
from orders.services import LineInput, order_place
from tests.factories import CustomerFactory, UserFactory, make_order

pytestmark = pytest.mark.django_db


@pytest.fixture
def order():
    customer = CustomerFactory(first_name="Ada", last_name="Lovelace")
    address_create(
        customer=customer,
        name="Ada Lovelace",
        company="Analytical Engines",
        line1="12 St James's Square",
        postal_code="SW1Y 4JH",
        city="London",
        country="GB",
    )
    return order_place(
        customer=customer,
        number="SO-1001",
        lines=[
            LineInput(
                product_name="Punched cards", sku="PC-100", quantity=3, unit_price=Decimal("4.50")
            ),
            LineInput(
                product_name="Brass gear <b>", sku="", quantity=1, unit_price=Decimal("20.00")
            ),
        ],
        shipping=Decimal("5.00"),
        tax=Decimal("3.50"),
        discount=Decimal("2.00"),
        source="newsletter",
        medium="email",
        campaign="spring-sale",
    )


def test_order_page_shows_lines_amounts_addresses_and_origin(viewer_client, order):
    response = viewer_client.get("/orders/SO-1001/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Order SO-1001" in html and "Pending" in html
    assert f'href="/clients/{order.customer_id}/"' in html
    assert "Punched cards" in html and "PC-100" in html and "€13.50" in html
    assert "Brass gear &lt;b&gt;" in html
    for amount in ("€33.50", "€5.00", "€3.50", "-€2.00", "€40.00", "€0.00"):
        assert amount in html, amount
    assert "12 St James&#x27;s Square" in html and "SW1Y 4JH London" in html
    assert "newsletter" in html and "email" in html and "spring-sale" in html


def test_order_page_shows_addresses_as_they_were_when_ordered(viewer_client, order):
    order.customer.refresh_from_db()  # address_create set its defaults after it was read
    address = order.customer.default_billing_address
    address_update(address=address, actor=None, version=1, city="Manchester")
    html = viewer_client.get(order.get_absolute_url()).content.decode()
    assert "London" in html and "Manchester" not in html


def test_order_without_address_snapshots(viewer_client):
    order = make_order(CustomerFactory())
    html = viewer_client.get(order.get_absolute_url()).content.decode()
    assert "No billing address recorded." in html and "No shipping address recorded." in html


def test_unknown_order_number_gets_the_back_office_404(viewer_client):
    response = viewer_client.get("/orders/NOPE-1/")
    assert response.status_code == 404
    assert "404.html" in [t.name for t in response.templates]


def test_order_page_needs_the_view_permission(order):
    client = Client()
    client.force_login(UserFactory())
    assert client.get(order.get_absolute_url()).status_code == 403


def test_order_page_query_count_does_not_grow_with_lines(viewer_client, order):
    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert viewer_client.get(order.get_absolute_url()).status_code == 200
        return len(queries)

    # (The permission names are read once per process, by its first request: not counted.)
    count()
    few = count()
    OrderLine.objects.bulk_create(
        OrderLine(order=order, product_name=f"P{i}", quantity=1, unit_price=1, line_total=1)
        for i in range(30)
    )
    assert count() == few


def test_the_page_reads_the_order_as_order_detail_does(order, django_assert_num_queries):
    """order_page() (SQL compiled once) gives the order, its customer and campaign, and its
    lines as order_detail() does; the lines are read with the order, not by the page."""
    from orders.selectors import order_detail, order_page

    expected = order_detail().get(number="SO-1001")
    with django_assert_num_queries(2):
        found = order_page(number="SO-1001")
    with django_assert_num_queries(0):
        lines = list(found.lines.all())
        assert all(line.order is found for line in lines)
        customer, campaign = found.customer, found.push_campaign
    assert [(f.attname, getattr(found, f.attname)) for f in found._meta.concrete_fields] == [
        (f.attname, getattr(expected, f.attname)) for f in expected._meta.concrete_fields
    ]
    assert (customer.pk, customer.full_name, campaign) == (
        expected.customer.pk,
        expected.customer.full_name,
        expected.push_campaign,
    )
    assert [(line.pk, line.product_name, line.line_total) for line in lines] == [
        (line.pk, line.product_name, line.line_total) for line in expected.lines.all()
    ]
    assert order_page(number="SO-1002") is None
