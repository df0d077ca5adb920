"""What each push earned: which orders a campaign is credited with, its UTM link, its figures."""

import os
import subprocess
import sys
from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import override_settings
from django.utils import timezone

from notifications.attribution import campaign_credited, campaigns_credited, link_with_utm
from notifications.selectors import campaign_earnings
from orders.models import Order, OrderStatus
from orders.services import (
    ImportedOrder,
    LineInput,
    order_draft,
    order_pay,
    order_place,
    order_refund,
    orders_import,
)
from tests.factories import CustomerFactory, make_campaign, make_click, make_order

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)


def _place(customer, at, total="50.00", **kwargs):
    return make_order(customer, placed_at=at, total=total, status=OrderStatus.PENDING, **kwargs)


# --- The attribution window ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("after_click", "credited"),
    [
        (timedelta(0), True),  # placed the instant of the click
        (timedelta(seconds=1), True),
        (7 * DAY - timedelta(microseconds=1), True),
        (7 * DAY, True),  # the window's last instant is included
        (7 * DAY + timedelta(microseconds=1), False),
        (8 * DAY, False),
        (-timedelta(microseconds=1), False),  # ordered before clicking
        (-DAY, False),
    ],
)
def test_an_order_is_credited_within_seven_days_after_the_click(after_click, credited):
    customer, campaign = CustomerFactory(), make_campaign()
    clicked_at = timezone.now() - 10 * DAY
    make_click(customer, campaign, at=clicked_at)
    order = _place(customer, clicked_at + after_click)
    assert order.push_campaign_id == (campaign.pk if credited else None)
    # The bulk import decides the same.
    assert campaigns_credited([(customer.pk, clicked_at + after_click)]) == [
        campaign.pk if credited else None
    ]


@override_settings(PUSH_ATTRIBUTION_DAYS=1)
def test_the_window_is_a_setting():
    customer, campaign = CustomerFactory(), make_campaign()
    clicked_at = timezone.now() - 10 * DAY
    make_click(customer, campaign, at=clicked_at)
    assert _place(customer, clicked_at + DAY).push_campaign_id == campaign.pk
    assert _place(customer, clicked_at + 2 * DAY).push_campaign_id is None


def test_the_last_click_before_the_order_wins_across_campaigns_and_devices():
    customer = CustomerFactory()
    first, second = make_campaign(title="First"), make_campaign(title="Second")
    start = timezone.now() - 20 * DAY
    make_click(customer, first, at=start)
    make_click(customer, second, at=start + 2 * DAY)  # on another device
    assert _place(customer, start + DAY).push_campaign_id == first.pk
    assert _place(customer, start + 3 * DAY).push_campaign_id == second.pk
    # The second click's window has passed; the first one's too.
    assert _place(customer, start + 10 * DAY).push_campaign_id is None
    # A click after the order does not take it over.
    late = make_campaign(title="Late")
    order = _place(customer, start + 4 * DAY)
    make_click(customer, late, at=start + 5 * DAY)
    order.refresh_from_db()
    assert order.push_campaign_id == second.pk


def test_orders_without_a_click_are_credited_to_no_campaign():
    campaign = make_campaign()
    clicker, other = CustomerFactory(), CustomerFactory()
    make_click(clicker, campaign, at=timezone.now() - DAY)
    # Delivered but never clicked.
    unclicked = make_click(other, campaign, at=timezone.now() - DAY)
    unclicked.clicked_at = None
    unclicked.save()
    assert _place(other, timezone.now()).push_campaign_id is None
    assert _place(CustomerFactory(), timezone.now()).push_campaign_id is None
    assert _place(clicker, timezone.now()).push_campaign_id == campaign.pk


def test_the_credit_is_decided_once_when_the_order_is_placed():
    customer, first, second = CustomerFactory(), make_campaign(), make_campaign()
    now = timezone.now()
    make_click(customer, first, at=now - 2 * DAY)
    order = _place(customer, now - DAY)
    make_click(customer, second, at=now - timedelta(hours=1))
    order = order_pay(order=order)  # paid later: still the campaign of the placing
    assert Order.objects.get(pk=order.pk).push_campaign_id == first.pk


def test_the_lookup_is_one_statement(django_assert_num_queries):
    customer, campaign = CustomerFactory(), make_campaign()
    make_click(customer, campaign, at=timezone.now() - DAY)
    with django_assert_num_queries(1):
        assert campaign_credited(customer_id=customer.pk, placed_at=timezone.now()) == campaign.pk


def test_placing_an_order_costs_one_statement_more_and_no_write(django_assert_num_queries):
    """The write path: the lookup is the only statement added to placing an order."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    customer = CustomerFactory()
    line = [LineInput(product_name="P", sku="P", quantity=1, unit_price=Decimal("5"))]
    with CaptureQueriesContext(connection) as queries:
        order_place(customer=customer, number="Q1", lines=line, source="x")
    lookups = [q for q in queries if "clicked_at" in q["sql"]]
    assert len(lookups) == 1 and lookups[0]["sql"].lstrip().upper().startswith("SELECT")
    assert not any("notifications_" in q["sql"] and "UPDATE" in q["sql"] for q in queries)


def test_the_bulk_import_credits_new_orders_in_one_query(django_assert_max_num_queries):
    campaign, customers = make_campaign(), [CustomerFactory() for _ in range(3)]
    now = timezone.now()
    make_click(customers[0], campaign, at=now - 2 * DAY)
    make_click(customers[1], campaign, at=now - 9 * DAY)  # too old for its order
    items = [
        ImportedOrder(
            draft=order_draft(
                number=f"IMP{i}",
                lines=[LineInput(product_name="P", sku="P", quantity=1, unit_price=Decimal(10))],
                placed_at=now - DAY,
                source="",
            ),
            customer_id=customer.pk,
            status=OrderStatus.PAID,
            refunded_amount=Decimal(0),
        )
        for i, customer in enumerate(customers)
    ]
    results = orders_import(items)
    assert [order.push_campaign_id for _, order in results] == [campaign.pk, None, None]
    assert Order.objects.get(number="IMP0").push_campaign_id == campaign.pk
    assert campaign_earnings([campaign])[campaign.pk].orders == 1


# --- What a campaign earned -----------------------------------------------------------------


def test_refunds_and_cancellations_are_counted_as_the_customers_statistics_count_them():
    campaign = make_campaign(customers_count=4000, clicks=8)
    now = timezone.now()
    customers = [CustomerFactory() for _ in range(6)]
    for customer in customers:
        make_click(customer, campaign, at=now - 3 * DAY)
    at = now - 2 * DAY
    make_order(customers[0], placed_at=at, total="100.00")  # paid: 100
    make_order(customers[1], placed_at=at, total="80.00", refunded="30.00")  # 50 kept
    make_order(customers[2], placed_at=at, total="60.00", status=OrderStatus.REFUNDED)  # 0
    make_order(customers[3], placed_at=at, total="70.00", status=OrderStatus.CANCELLED)
    pending = make_order(customers[4], placed_at=at, total="40.00", status=OrderStatus.PENDING)
    make_order(customers[5], placed_at=at, total="25.50", status=OrderStatus.FULFILLED)
    earnings = campaign_earnings([campaign])[campaign.pk]
    assert (earnings.orders, earnings.revenue, earnings.pending) == (4, Decimal("175.50"), 1)
    assert earnings.conversion_percent == Decimal("50.0")  # 4 orders / 8 clicks
    assert earnings.revenue_per_thousand == Decimal("43.88")  # 175.50 × 1000 / 4000
    # Paid later: it counts then; a later refund comes off the revenue.
    order_pay(order=pending)
    order_refund(order=Order.objects.get(pk=pending.pk), amount="15.00")
    earnings = campaign_earnings([campaign])[campaign.pk]
    assert (earnings.orders, earnings.revenue, earnings.pending) == (5, Decimal("200.50"), 0)


def test_a_campaign_without_clicks_or_recipients_has_no_rates():
    campaign = make_campaign()
    earnings = campaign_earnings([campaign])[campaign.pk]
    assert (earnings.orders, earnings.revenue) == (0, Decimal("0.00"))
    assert earnings.conversion_percent is None and earnings.revenue_per_thousand is None
    assert campaign_earnings([]) == {}


# --- The link's UTM parameters --------------------------------------------------------------

UTM = "utm_source=backoffice&utm_medium=push&utm_campaign=push-7"


@pytest.mark.parametrize(
    ("link", "opened"),
    [
        ("https://shop.example/sale", f"https://shop.example/sale?{UTM}"),
        ("https://shop.example/sale?", f"https://shop.example/sale?{UTM}"),
        ("https://shop.example/?a=1&", f"https://shop.example/?a=1&{UTM}"),
        ("https://shop.example/?a=1&&b", f"https://shop.example/?a=1&&b&{UTM}"),
        # The query is kept byte for byte (not re-encoded), the fragment stays last.
        (
            "https://shop.example/p?q=%C3%A9+x#top?x=1",
            f"https://shop.example/p?q=%C3%A9+x&{UTM}#top?x=1",
        ),
        ("https://shop.example/#", f"https://shop.example/?{UTM}#"),
        (
            "https://shop.example/#/route?utm_source=x",
            f"https://shop.example/?{UTM}#/route?utm_source=x",
        ),
        # The admin's own UTM parameters win, one by one, even empty or percent-encoded.
        (
            "https://shop.example/?utm_source=newsletter",
            "https://shop.example/?utm_source=newsletter&utm_medium=push&utm_campaign=push-7",
        ),
        (
            "https://shop.example/?utm_source=&utm%5Fmedium=sms&utm_campaign=spring",
            "https://shop.example/?utm_source=&utm%5Fmedium=sms&utm_campaign=spring",
        ),
        # Another letter case is another parameter to analytics tools and the storefront.
        ("https://shop.example/?UTM_SOURCE=x", f"https://shop.example/?UTM_SOURCE=x&{UTM}"),
        # Odd but valid-looking queries do not break it.
        ("https://shop.example/?%ZZ=1;a=2", f"https://shop.example/?%ZZ=1;a=2&{UTM}"),
        ("https://[::1]:8000/?x", f"https://[::1]:8000/?x&{UTM}"),
        ("", ""),
    ],
)
def test_the_link_gets_the_campaigns_utm_without_clobbering_the_admins(link, opened):
    assert link_with_utm(link, campaign_id=7) == opened


@pytest.mark.parametrize(("value", "accepted"), [("0", False), ("91", False), ("30", True)])
def test_the_window_setting_is_checked_when_the_settings_load(value, accepted):
    env = {**os.environ, "SECRET_KEY": "x", "PUSH_ATTRIBUTION_DAYS": value}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    script = "import backoffice.settings as s; print(s.PUSH_ATTRIBUTION_DAYS)"
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=False
    )
    if accepted:
        assert done.returncode == 0 and done.stdout.strip() == value
    else:
        assert done.returncode != 0 and "PUSH_ATTRIBUTION_DAYS must be" in done.stderr
