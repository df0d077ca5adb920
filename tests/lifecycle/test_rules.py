"""The lifecycle rules: groups at their boundaries (fallbacks and quantiles), the SQL against
the Python reference customer by customer, reasons in English and French, expected next order."""

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone, translation

from clients.models import Customer
from lifecycle.models import Thresholds
from lifecycle.rules import (
    FALLBACK,
    MIN_CLIENTS,
    Group,
    Rules,
    expected_next_order,
    group_of,
    group_sql,
    reason,
    rules_from_quantiles,
)
from lifecycle.services import lifecycle_recompute, thresholds_compute
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)
SECOND = timedelta(seconds=1)


def _group(rules=FALLBACK, *, n, spent="0", days):
    now = timezone.now()
    return group_of(
        orders_count=n,
        total_spent=Decimal(spent),
        last_order_at=now - days if isinstance(days, timedelta) else now - days * DAY,
        now=now,
        rules=rules,
    )


@pytest.mark.parametrize(
    ("n", "spent", "days", "group"),
    [
        (1, "10", 30 * DAY, Group.NEW),  # exactly at the recent bound: still recent
        (1, "10", 30 * DAY + SECOND, Group.NEEDS_ATTENTION),
        (4, "500", 30 * DAY, Group.CHAMPIONS),
        (4, "499.99", 30 * DAY, Group.LOYAL),  # a cent under the top spend
        (3, "5000", 30 * DAY, Group.PROMISING),  # an order under the top frequency
        (4, "500", 30 * DAY + SECOND, Group.LOYAL),
        (4, "10", 90 * DAY, Group.LOYAL),
        (4, "10", 90 * DAY + SECOND, Group.AT_RISK),
        (2, "500", 90 * DAY + SECOND, Group.AT_RISK),  # big spender, not frequent
        (2, "499.99", 90 * DAY, Group.NEEDS_ATTENTION),
        (2, "499.99", 90 * DAY + SECOND, Group.ABOUT_TO_LOSE),
        (9, "9999", 365 * DAY, Group.AT_RISK),
        (9, "9999", 365 * DAY + SECOND, Group.LOST),
        (0, "0", 0 * DAY, Group.PROSPECTS),
    ],
)
def test_the_fallback_groups_at_their_boundaries(n, spent, days, group):
    assert _group(n=n, spent=spent, days=days) == group


def test_quantile_thresholds_are_floored_and_kept_in_order():
    rules = rules_from_quantiles(
        recent=0.2, active=3.5, lost=10.01, top_orders=1, top_spent=Decimal("12.5")
    )
    assert rules == Rules(7, 14, 60, 2, Decimal("12.5"))
    rules = rules_from_quantiles(
        recent=20.01, active=19, lost=400, top_orders=6, top_spent=Decimal("80")
    )
    assert rules == Rules(21, 21, 400, 6, Decimal("80"))


def _client(*, n, spent, last, first=None):
    customer = CustomerFactory()
    Customer.objects.filter(pk=customer.pk).update(
        orders_count=n,
        total_spent=Decimal(spent),
        last_order_at=last,
        first_order_at=first or last,
    )
    return customer


def test_a_small_shop_gets_the_fallbacks():
    now = timezone.now()
    for i in range(MIN_CLIENTS - 1):
        _client(n=1 + i % 5, spent=i, last=now - i * DAY)
    rules, count = thresholds_compute(now=now)
    assert (rules, count) == (FALLBACK, MIN_CLIENTS - 1)


def test_a_shop_with_enough_clients_gets_its_own_quantiles():
    now = timezone.now().replace(microsecond=0)
    # 200 clients, one per day back to 199 days; orders 1..10, spend 1..200.
    for i in range(200):
        _client(n=1 + i % 10, spent=200 - i, last=now - i * DAY - timedelta(hours=1))
    CustomerFactory()  # a lead does not count
    rules, count = thresholds_compute(now=now)
    assert count == 200
    # Days since the last order: i + 1/24 for i in 0..199. Their 20% quantile (rank 40) is
    # 39.04 days -> 40; 50% (rank 100) 99.04 -> 100; 90% (rank 180) 179.04 -> 180.
    # Orders: 1..10 twenty times each, 80% quantile (rank 160) is 8; spend 1..200: 160.
    assert rules == Rules(40, 100, 180, 8, Decimal("160"))
    # The recompute stores and applies them.
    result = lifecycle_recompute(now=now)
    assert result.thresholds == rules
    stored = Thresholds.objects.get()
    assert (stored.recent_days, stored.from_quantiles, stored.clients) == (40, True, 200)


def _random_customers(rng, now, count=400):
    customers = []
    for _ in range(count):
        n = rng.choice([0, 1, 1, 2, 3, 4, 5, 8, 20])
        if n == 0:
            customers.append(CustomerFactory())
            continue
        # Days around every fallback boundary, and at it to the second.
        days = rng.choice([0, 1, 29, 30, 31, 89, 90, 91, 364, 365, 366, 1000])
        last = now - days * DAY + rng.choice([-SECOND, timedelta(0), SECOND, timedelta(hours=5)])
        first = last - rng.randint(0, 400) * DAY
        spent = Decimal(rng.choice([0, 10, 499, "499.99", 500, "500.01", 2000]))
        customers.append(_client(n=n, spent=spent, last=last, first=first))
    return customers


@pytest.mark.parametrize(("seed", "count"), [(1, 60), (2, 400)])
def test_the_recompute_agrees_with_the_python_reference(seed, count):
    """The SQL (group_sql, run by the recompute) and group_of decide alike for every customer,
    with the fallbacks (60 customers) and with a shop's quantiles (400), now and later."""
    rng = random.Random(seed)
    now = timezone.now().replace(microsecond=0)
    _random_customers(rng, now, count)
    for _ in range(2):
        result = lifecycle_recompute(now=now)
        assert (result.thresholds == FALLBACK) == (count == 60)
        rules = result.thresholds
        for customer in Customer.objects.all():
            expected = group_of(
                orders_count=customer.orders_count,
                total_spent=customer.total_spent,
                last_order_at=customer.last_order_at,
                now=now,
                rules=rules,
            )
            assert customer.lifecycle_group == expected, (customer.pk, rules)
        assert lifecycle_recompute(now=now).changed == 0  # safe to run twice
        now += 45 * DAY  # time passes: groups age


def test_the_sql_reads_the_stored_thresholds_and_falls_back_without_them():
    now = timezone.now()
    customer = _client(n=2, spent="50", last=now - 20 * DAY)
    table = connection.ops.quote_name(Customer._meta.db_table)
    sql = group_sql(connection.vendor, n="orders_count", spent="total_spent", last="last_order_at")

    def group():
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT {sql} FROM {table} WHERE id = %s", [customer.pk])
            return cursor.fetchone()[0]

    assert group() == Group.PROMISING  # fallback: recent is 30 days
    Thresholds.objects.create(
        pk=1,
        recent_days=10,
        active_days=15,
        lost_days=19,
        top_orders=2,
        top_spent=Decimal("40"),
        computed_at=now,
    )
    assert group() == Group.LOST


def test_expected_next_order_from_the_customers_own_interval():
    last = timezone.now()
    assert expected_next_order(orders_count=1, first_order_at=last, last_order_at=last) is None
    # 4 orders over 90 days: every 30 days.
    first = last - 90 * DAY
    assert expected_next_order(orders_count=4, first_order_at=first, last_order_at=last) == (
        last + 30 * DAY
    )
    # Two orders the same minute: at least a day.
    assert expected_next_order(orders_count=2, first_order_at=last, last_order_at=last) == (
        last + DAY
    )


@pytest.mark.parametrize(
    ("now", "placed", "said"),
    [
        # 03:20 in Paris on 2 December, an order of 09:00 the day before: yesterday.
        ("2026-12-02T02:20:00+00:00", "2026-12-01T08:00:00+00:00", "yesterday"),
        # 23:50 and 00:30 the same day in Paris: today, though 23 h apart.
        ("2026-12-01T22:50:00+00:00", "2026-11-30T23:30:00+00:00", "today"),
        # 00:10 after an order at 23:55: yesterday, 15 minutes later.
        ("2026-12-01T23:10:00+00:00", "2026-12-01T22:55:00+00:00", "yesterday"),
        # Across the clock change of 25 October: three calendar days.
        ("2026-10-26T23:30:00+00:00", "2026-10-23T22:30:00+00:00", "3 days ago"),
    ],
)
def test_reasons_count_calendar_days_in_the_shops_time_zone(settings, now, placed, said):
    settings.TIME_ZONE = "Europe/Paris"
    stats = {
        "group": Group.NEW,
        "orders_count": 1,
        "total_spent": Decimal("10"),
        "first_order_at": datetime.fromisoformat(placed),
        "last_order_at": datetime.fromisoformat(placed),
        "now": datetime.fromisoformat(now),
    }
    with translation.override("en"):
        assert reason(**stats) == f"New: first order {said}"


def test_reasons_in_english_and_french():
    # Midday in Paris, no clock change within the days counted back: the days are the
    # calendar days in the shop's time zone (the next test), 24 h each here.
    now = datetime(2026, 12, 2, 11, 0, tzinfo=UTC)
    at_risk = {
        "group": Group.AT_RISK,
        "orders_count": 5,
        "total_spent": Decimal("1234.5"),
        "first_order_at": now - (142 + 4 * 45) * DAY,
        "last_order_at": now - 142 * DAY,
        "now": now,
    }
    new = {**at_risk, "group": Group.NEW, "orders_count": 1, "last_order_at": now - DAY}
    champion = {**at_risk, "group": Group.CHAMPIONS, "last_order_at": now - 3 * DAY}
    lead = {**at_risk, "group": Group.PROSPECTS, "orders_count": 0, "last_order_at": None}
    with translation.override("en"):
        assert reason(**at_risk) == "At risk: no order for 142 days, usually orders every 45 days"
        assert reason(**new) == "New: first order yesterday"
        today = {**champion, "last_order_at": now - DAY / 2}
        assert reason(**today) == "Champions: 5 orders, €1,234.50 spent, the last one today"
        assert reason(**{**new, "last_order_at": now - 2 * DAY}) == "New: first order 2 days ago"
        assert reason(**champion) == "Champions: 5 orders, €1,234.50 spent, the last one 3 days ago"
        assert reason(**lead) == "Prospects: no order yet"
    with translation.override("fr"):
        nb = "\u00a0"
        assert reason(**at_risk) == (
            f"À risque{nb}: aucune commande depuis 142 jours, commande d’habitude tous les 45 jours"
        )
        assert reason(**new) == f"Nouveaux{nb}: première commande hier"
        assert (
            reason(**{**new, "last_order_at": now})
            == f"Nouveaux{nb}: première commande aujourd’hui"
        )
        assert reason(**lead) == f"Prospects{nb}: aucune commande pour l’instant"
        assert reason(**champion) == (
            f"Champions{nb}: 5 commandes, 1{nb}234,50{nb}€ dépensés, la dernière il y a 3 jours"
        )
