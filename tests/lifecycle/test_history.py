"""The snapshot of a past day reconstructed from the order history (a new install or an
imported history has no snapshot that old): the same groups the rules gave then, counted
from the orders placed by then, never replacing a snapshot counted on the day."""

import math
import random
from datetime import datetime, time, timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from clients.models import Customer
from lifecycle.models import GroupSnapshot
from lifecycle.rules import (
    ACTIVE_QUANTILE,
    DAY,
    FALLBACK,
    LOST_QUANTILE,
    MIN_CLIENTS,
    RECENT_QUANTILE,
    TOP_QUANTILE,
    Group,
    group_of,
    rules_from_quantiles,
)
from lifecycle.services import snapshot_from_history
from orders.models import FINALIZED_STATUSES, Order, OrderStatus
from tests.factories import CustomerFactory, make_order

pytestmark = pytest.mark.django_db


def _expected(day) -> dict[str, int]:
    """The reference, in Python: each customer's finalized orders placed by the end of
    `day`, the quantiles of thresholds_compute over them, group_of."""
    end = timezone.make_aware(datetime.combine(day + DAY, time.min))
    stats = {}
    for order in Order.objects.filter(status__in=FINALIZED_STATUSES, placed_at__lt=end):
        n, spent, last = stats.get(order.customer_id, (0, Decimal(0), None))
        last = order.placed_at if last is None else max(last, order.placed_at)
        stats[order.customer_id] = (n + 1, spent + order.total - order.refunded_amount, last)
    rules = FALLBACK
    if len(stats) >= MIN_CLIENTS:
        rows = list(stats.values())

        def at(values, q):
            return sorted(values)[max(0, math.ceil(q * len(values)) - 1)]

        lasts = sorted((last for _, _, last in rows), reverse=True)

        def recency(q):
            return (end - lasts[max(0, math.ceil(q * len(lasts)) - 1)]) / DAY

        rules = rules_from_quantiles(
            recent=recency(RECENT_QUANTILE),
            active=recency(ACTIVE_QUANTILE),
            lost=recency(LOST_QUANTILE),
            top_orders=at([n for n, _, _ in rows], TOP_QUANTILE),
            top_spent=at([s for _, s, _ in rows], TOP_QUANTILE),
        )
    counts = {}
    for n, spent, last in stats.values():
        group = group_of(
            orders_count=n, total_spent=spent, last_order_at=last, now=end, rules=rules
        )
        counts[group] = counts.get(group, 0) + 1
    leads = Customer.objects.filter(created_at__lt=end).exclude(pk__in=list(stats)).count()
    counts[Group.PROSPECTS] = counts.get(Group.PROSPECTS, 0) + leads
    return counts


def _shop(clients: int, seed: int = 5):
    """Clients with orders before and after the day, some refunded, cancelled or pending;
    leads created before and after it."""
    rng = random.Random(seed)
    now = timezone.now()
    for _ in range(clients):
        customer = CustomerFactory()
        Customer.objects.filter(pk=customer.pk).update(created_at=now - 900 * DAY)
        for _ in range(rng.choice([1, 1, 2, 3, 5])):
            status = rng.choice([OrderStatus.PAID] * 6 + [OrderStatus.REFUNDED, "cancelled"])
            make_order(
                customer,
                status=status,
                total=f"{rng.randint(10, 400)}.{rng.randint(0, 99):02d}",
                placed_at=now - rng.randint(0, 700) * DAY - rng.randint(0, 86399) * (DAY / 86400),
            )
    for days in (100, 10):  # a lead then, and one who signed up since
        lead = CustomerFactory()
        Customer.objects.filter(pk=lead.pk).update(created_at=now - days * DAY)


@pytest.mark.parametrize("clients", [12, MIN_CLIENTS + 20])
def test_the_reconstructed_snapshot_gives_the_groups_of_that_day(clients):
    _shop(clients)
    day = timezone.localdate() - timedelta(days=30)
    counts = snapshot_from_history(day=day)
    expected = _expected(day)
    assert {g: c for g, c in counts.items() if c} == {g: c for g, c in expected.items() if c}
    stored = GroupSnapshot.objects.filter(day=day)
    assert {s.group: s.customers for s in stored if s.customers} == counts
    assert all(s.from_history for s in stored) and stored.count() == len(Group.values)
    # The day is in the past: some orders were placed since, and the groups differ from now.
    assert sum(counts.values()) < Customer.objects.count()


def test_a_snapshot_counted_on_the_day_is_never_replaced():
    _shop(5)
    day = timezone.localdate() - timedelta(days=30)
    GroupSnapshot.objects.create(day=day, group=Group.LOYAL, customers=77)
    assert snapshot_from_history(day=day) is None
    assert list(GroupSnapshot.objects.values_list("group", "customers", "from_history")) == [
        (Group.LOYAL, 77, False)
    ]


def test_the_dashboard_says_the_comparison_was_reconstructed(viewer_client):
    _shop(5)
    day = timezone.localdate() - timedelta(days=30)
    snapshot_from_history(day=day)
    page = viewer_client.get(reverse("lifecycle:dashboard")).content.decode()
    assert "reconstructed from the order history" in page
    assert "No daily snapshot is old enough yet" not in page


def test_the_command_reconstructs_once_and_refuses_absurd_days():
    from io import StringIO

    from django.core.management import CommandError, call_command

    _shop(3)
    out = StringIO()
    call_command("lifecycle_recompute", "--history", "30", stdout=out)
    assert "reconstructed from the order history" in out.getvalue()
    call_command("lifecycle_recompute", "--history", "30", stdout=out)
    assert "has a snapshot already" in out.getvalue()
    for days in ("0", "-3", "99999"):
        with pytest.raises(CommandError, match="from 1 to 3650"):
            call_command("lifecycle_recompute", "--history", days)
