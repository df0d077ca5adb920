from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from clients.models import Customer
from orders.models import OrderStatus
from orders.services import order_refund, order_set_status
from tests.factories import AddressFactory, CustomerFactory, make_order

pytestmark = pytest.mark.django_db


def test_statistics_count_only_finalized_orders_net_of_refunds():
    customer = CustomerFactory()
    start = timezone.now() - timedelta(days=30)
    make_order(customer, total="100.00", placed_at=start, source="google", medium="cpc")
    make_order(
        customer,
        status=OrderStatus.FULFILLED,
        total="40.00",
        refunded="15.00",
        placed_at=start + timedelta(days=10),
        source="newsletter",
        medium="email",
    )
    make_order(
        customer, status=OrderStatus.REFUNDED, total="30.00", placed_at=start + timedelta(days=5)
    )
    make_order(
        customer, status=OrderStatus.PENDING, total="999.00", placed_at=start + timedelta(days=20)
    )
    last = make_order(
        customer, status=OrderStatus.CANCELLED, total="999.00", placed_at=start + timedelta(days=25)
    )
    customer.refresh_from_db()
    assert customer.orders_count == 3
    assert customer.total_spent == Decimal("125.00")  # 100 + (40 - 15) + (30 - 30)
    assert customer.first_order_at == start
    assert customer.last_order_at == start + timedelta(days=10)
    assert (customer.last_source, customer.last_medium) == ("newsletter", "email")
    assert customer.last_order_id != last.pk


def test_a_lead_becomes_a_client_when_an_order_is_paid():
    customer = CustomerFactory()
    order = make_order(customer, status=OrderStatus.PENDING, total="20.00")
    customer.refresh_from_db()
    assert customer.orders_count == 0 and not customer.is_client
    order_set_status(order=order, status=OrderStatus.PAID)
    customer.refresh_from_db()
    assert customer.orders_count == 1 and customer.total_spent == Decimal("20.00")
    assert customer.last_order_id == order.pk


def test_orders_freeze_the_default_addresses():
    address = AddressFactory(city="Lyon")
    customer = address.customer
    customer.default_billing_address = address
    customer.default_shipping_address = address
    customer.save()
    order = make_order(customer)
    address.city = "Paris"
    address.save()
    order.refresh_from_db()
    assert order.billing_address["city"] == "Lyon"
    assert order.shipping_address["city"] == "Lyon"


@pytest.mark.parametrize(
    ("status", "target"),
    [
        (OrderStatus.CANCELLED, OrderStatus.PAID),
        (OrderStatus.PENDING, OrderStatus.FULFILLED),
        (OrderStatus.REFUNDED, OrderStatus.PAID),
    ],
)
def test_impossible_status_changes_are_refused(status, target):
    order = make_order(CustomerFactory(), status=status)
    with pytest.raises(ValidationError):
        order_set_status(order=order, status=target)


def test_refunds_cannot_exceed_the_total_or_touch_pending_orders():
    customer = CustomerFactory()
    paid = make_order(customer, total="10.00")
    with pytest.raises(ValidationError):
        order_refund(order=paid, amount=Decimal("10.01"))
    with pytest.raises(ValidationError):
        order_refund(order=paid, amount=Decimal("0"))
    pending = make_order(customer, status=OrderStatus.PENDING)
    with pytest.raises(ValidationError):
        order_refund(order=pending, amount=Decimal("1"))
    customer.refresh_from_db()
    assert customer.total_spent == Decimal("10.00")


def test_rebuild_customer_stats_reports_and_fixes_drift(capsys):
    good, bad = CustomerFactory(), CustomerFactory()
    make_order(good, total="12.50")
    make_order(bad, total="7.25")
    Customer.objects.filter(pk=bad.pk).update(total_spent=Decimal("1.00"), orders_count=9)

    with pytest.raises(SystemExit):
        call_command("rebuild_customer_stats", "--check")
    assert "1 had drifted" in capsys.readouterr().out
    bad.refresh_from_db()
    assert bad.orders_count == 9  # --check changes nothing

    call_command("rebuild_customer_stats")
    assert "2 customers checked, 1 had drifted and were fixed" in capsys.readouterr().out
    bad.refresh_from_db()
    assert (bad.orders_count, bad.total_spent) == (1, Decimal("7.25"))
    call_command("rebuild_customer_stats", "--check")
    assert "0 had drifted" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("start", "target"),
    [(OrderStatus.PAID, OrderStatus.FULFILLED), (OrderStatus.PENDING, OrderStatus.CANCELLED)],
)
def test_a_change_that_keeps_the_statistics_does_not_rewrite_the_customer(start, target):
    customer = CustomerFactory()
    make_order(customer, total="12.00")
    order = make_order(customer, status=start, total="8.00")
    table = Customer._meta.db_table
    with CaptureQueriesContext(connection) as queries:
        order_set_status(order=order, status=target)
    updates = [q["sql"] for q in queries if q["sql"].startswith("UPDATE") and table in q["sql"]]
    assert updates == []
    customer.refresh_from_db()
    expected = (2, Decimal("20.00")) if start == OrderStatus.PAID else (1, Decimal("12.00"))
    assert (customer.orders_count, customer.total_spent) == expected


def test_a_change_of_the_statistics_rewrites_only_what_changed():
    customer = CustomerFactory()
    order = make_order(customer, status=OrderStatus.PENDING, total="8.00")
    with CaptureQueriesContext(connection) as queries:
        order_set_status(order=order, status=OrderStatus.PAID)
    table = Customer._meta.db_table
    updates = [q["sql"] for q in queries if q["sql"].startswith("UPDATE") and table in q["sql"]]
    assert len(updates) == 1 and '"email"' not in updates[0]
    customer.refresh_from_db()
    assert (customer.orders_count, customer.total_spent) == (1, Decimal("8.00"))
