"""Order reads used by the client page: monthly spend and the purchase summary."""

import zoneinfo
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection

from orders.models import OrderStatus
from orders.selectors import customer_monthly_spend, customer_purchase_summary
from tests.factories import CustomerFactory, make_order

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)


def test_monthly_spend_covers_twelve_months_in_the_shop_time_zone(settings):
    settings.TIME_ZONE = "Europe/Paris"
    customer = CustomerFactory()
    # 31 March 22:30 UTC is already 1 April in Paris.
    make_order(customer, total="10.00", placed_at=datetime(2026, 3, 31, 22, 30, tzinfo=UTC))
    make_order(customer, total="5.00", placed_at=datetime(2026, 4, 20, tzinfo=UTC))
    make_order(
        customer, total="40.00", refunded="15.00", placed_at=datetime(2026, 6, 1, tzinfo=UTC)
    )
    make_order(customer, status=OrderStatus.REFUNDED, total="30.00", placed_at=NOW)
    make_order(customer, status=OrderStatus.PENDING, total="99.00", placed_at=NOW)
    make_order(customer, status=OrderStatus.CANCELLED, total="99.00", placed_at=NOW)
    # Before the window (12 months = July 2025 to June 2026).
    make_order(customer, total="77.00", placed_at=datetime(2025, 6, 20, tzinfo=UTC))
    make_order(CustomerFactory(), total="500.00", placed_at=NOW)

    months = customer_monthly_spend(customer_id=customer.pk, now=NOW)
    assert len(months) == 12
    assert months[0][0].isoformat() == "2025-07-01" and months[-1][0].isoformat() == "2026-06-01"
    spend = {month.isoformat()[:7]: value for month, value in months}
    assert spend["2026-03"] == Decimal("0.00")
    assert spend["2026-04"] == Decimal("15.00")
    assert spend["2026-06"] == Decimal("25.00")
    assert sum(spend.values()) == Decimal("40.00")


def test_monthly_spend_skips_its_query_only_when_the_last_order_is_outside_the_window(
    django_assert_num_queries,
):
    customer = CustomerFactory()
    make_order(customer, total="12.00", placed_at=datetime(2026, 2, 3, tzinfo=UTC))
    make_order(customer, total="8.00", placed_at=datetime(2025, 1, 3, tzinfo=UTC))
    customer.refresh_from_db()
    with django_assert_num_queries(1):
        months = customer_monthly_spend(
            customer_id=customer.pk, now=NOW, last_order_at=customer.last_order_at
        )
    assert sum(value for _, value in months) == Decimal("12.00")
    # The same answers as the query gives, without it: a last order before the window, none.
    for last_order_at in (datetime(2025, 6, 30, tzinfo=UTC), None):
        with django_assert_num_queries(0):
            skipped = customer_monthly_spend(
                customer_id=customer.pk,
                now=datetime(2027, 6, 15, tzinfo=UTC),
                last_order_at=last_order_at,
            )
        assert skipped == customer_monthly_spend(
            customer_id=customer.pk, now=datetime(2027, 6, 15, tzinfo=UTC)
        )
        assert len(skipped) == 12 and not any(value for _, value in skipped)


def test_purchase_summary_comes_from_the_stored_statistics():
    customer = CustomerFactory()
    start = NOW - timedelta(days=60)
    for days, total in ((0, "10.00"), (15, "20.00"), (45, "60.00")):
        make_order(customer, total=total, placed_at=start + timedelta(days=days))
    customer.refresh_from_db()
    summary = customer_purchase_summary(customer)
    assert summary.orders_count == 3
    assert summary.total_spent == Decimal("90.00")
    assert summary.average_cart == Decimal("30.00")
    # Gaps of 15 and 30 days.
    assert summary.days_between_orders == pytest.approx(22.5)


def test_the_average_cart_rounds_half_a_cent_up():
    customer = CustomerFactory()
    for total in ("72.00", "72.97"):  # 144.97 / 2 = 72.485
        make_order(customer, total=total)
    customer.refresh_from_db()
    assert customer_purchase_summary(customer).average_cart == Decimal("72.49")


def test_purchase_summary_of_a_lead():
    summary = customer_purchase_summary(CustomerFactory())
    assert summary.orders_count == 0
    assert summary.average_cart is None and summary.days_between_orders is None


def test_the_client_pages_compiled_reads_give_the_querysets_rows(settings):
    """The order history's pages and the monthly spend, read with SQL compiled once, are the
    rows their querysets give (a customer's own orders only, in the history's order)."""
    from orders.selectors import (
        CustomerOrderPages,
        _monthly_spend,
        _monthly_spend_query,
        customer_orders,
    )

    settings.TIME_ZONE = "Europe/Paris"
    customer, other = CustomerFactory(), CustomerFactory()
    for day in range(1, 8):
        make_order(customer, total=f"{day}.50", placed_at=datetime(2026, day, 28, 23, tzinfo=UTC))
    make_order(other, total="9.00", placed_at=NOW)
    pages = CustomerOrderPages(customer_id=customer.pk)
    for key in (slice(0, 1), slice(0, 3), slice(0, 7), slice(0, 20), slice(2, 5), slice(0, 150)):
        expected = list(customer_orders(customer_id=customer.pk)[key])
        found = pages[key]
        assert [(o.pk, o.number, o.placed_at, o.total) for o in found] == [
            (o.pk, o.number, o.placed_at, o.total) for o in expected
        ]
    assert pages[0:0] == []
    zone = zoneinfo.ZoneInfo("Europe/Paris")
    start = datetime(2026, 3, 1, tzinfo=zone)
    queryset = _monthly_spend(customer_id=customer.pk, start=start, tz=zone)
    expected = sorted((row["month"], row["spent"]) for row in queryset)
    compiled = _monthly_spend_query("Europe/Paris")
    found = sorted(compiled.rows(customer.pk, connection.ops.adapt_datetimefield_value(start)))
    assert found == expected and len(found) == 5
