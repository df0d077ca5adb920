"""The tab counts stay exact through every way customers change tab."""

import pytest
from django.core.management import call_command

from clients.models import Customer
from clients.selectors import tab_counts
from orders.models import OrderStatus
from orders.services import order_refund, order_set_status
from tests.factories import CustomerFactory, make_order

pytestmark = pytest.mark.django_db


def _actual():
    return {
        "clients": Customer.objects.filter(orders_count__gt=0).count(),
        "leads": Customer.objects.filter(orders_count=0).count(),
    }


def test_tab_counts_follow_sign_ups_purchases_refunds_and_deletions():
    start = tab_counts()
    assert start == _actual()
    buyer, browser, refunded = CustomerFactory(), CustomerFactory(), CustomerFactory()
    assert tab_counts() == {"clients": start["clients"], "leads": start["leads"] + 3}

    pending = make_order(buyer, status=OrderStatus.PENDING)
    assert tab_counts()["clients"] == start["clients"]  # a pending order is no purchase
    order_set_status(order=pending, status=OrderStatus.PAID)
    make_order(buyer)  # a second purchase changes no tab
    order = make_order(refunded, total="20.00")
    assert tab_counts() == {"clients": start["clients"] + 2, "leads": start["leads"] + 1}

    order_refund(order=order, amount=order.total)  # fully refunded: still a purchase
    assert tab_counts() == _actual()

    # Bulk changes outside the services (the statistics rebuild) are counted too.
    Customer.objects.filter(pk=buyer.pk).update(orders_count=0)
    assert tab_counts() == _actual()
    call_command("rebuild_customer_stats", verbosity=0)
    assert (
        tab_counts()
        == _actual()
        == {
            "clients": start["clients"] + 2,
            "leads": start["leads"] + 1,
        }
    )

    browser.delete()
    assert tab_counts() == {"clients": start["clients"] + 2, "leads": start["leads"]}
