import re
from datetime import date, timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.models import Count, Q
from django.utils import timezone

from clients.models import Address, Customer, Note
from clients.search import customer_search_text
from clients.selectors import tab_counts
from demo import shop as demo
from demo.push_service import demo_subscription_keys
from lifecycle.models import Thresholds
from lifecycle.services import lifecycle_recompute
from orders.models import Order, OrderStatus

# seed_demo commits (from a second connection on PostgreSQL), so these tests need real
# transactions; serialized_rollback keeps the migrations' rows (roles, content types) right for
# the other transactional tests that restore them.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def _seed(*args):
    call_command("seed_demo", *args, verbosity=0)


def test_seed_demo_builds_a_shop_whose_stored_statistics_have_no_drift(capsys):
    _seed("--customers", "150", "--seed", "7", "--chunk-size", "40")

    assert Customer.objects.count() == 150
    clients = Customer.objects.filter(orders_count__gt=0).count()
    assert 60 <= clients <= 120  # about 60% clients, the rest leads
    statuses = set(Order.objects.values_list("status", flat=True))
    assert statuses == set(OrderStatus.values)
    assert Order.objects.filter(
        status__in=[OrderStatus.PAID, OrderStatus.FULFILLED], refunded_amount__gt=0
    ).exists(), "some partial refunds"
    line_counts = set(
        Order.objects.annotate(n=Count("lines")).values_list("n", flat=True).distinct()
    )
    assert line_counts <= {1, 2, 3, 4} and 1 in line_counts
    assert Order.objects.values("medium").distinct().count() >= 5
    assert Note.objects.filter(author__username="staff").exists()
    assert Customer.objects.annotate(n=Count("addresses")).filter(n__gte=2).exists()

    for customer in Customer.objects.select_related("default_billing_address"):
        assert customer.search_text == customer_search_text(
            pk=customer.pk,
            first_name=customer.first_name,
            last_name=customer.last_name,
            email=customer.email,
            phone=customer.phone,
        )
        billing = customer.default_billing_address
        assert customer.country == (billing.country if billing else "")
        first_order = customer.orders.order_by("placed_at").first()
        if first_order:
            assert customer.created_at < first_order.placed_at

    call_command("rebuild_customer_stats", "--check")
    assert "150 customers checked, 0 had drifted" in capsys.readouterr().out
    # The lifecycle dashboard has a day to compare with: 30 days ago, from the order history.
    from lifecycle.models import GroupSnapshot

    then = GroupSnapshot.objects.filter(day=timezone.localdate() - timedelta(days=30))
    assert then.count() == 9 and all(then.values_list("from_history", flat=True))
    assert 0 < sum(then.values_list("customers", flat=True)) <= 150

    # New ids follow the existing rows; the sequences were moved past them.
    _seed("--customers", "20", "--seed", "8")
    assert Customer.objects.count() == 170
    address = Address.objects.create(
        customer=Customer.objects.first(), name="X", line1="1 rue", postal_code="1", city="Y"
    )
    assert address.pk > Address.objects.exclude(pk=address.pk).order_by("-pk").first().pk


def test_push_opt_in_matches_active_subscriptions():
    if demo.PushSubscription is None:
        pytest.skip("the notifications app has no subscription model yet")
    _seed("--customers", "120", "--seed", "3")
    with_active = Customer.objects.filter(push_subscriptions__status="active").distinct()
    opted_in = Customer.objects.filter(push_opt_in=True)
    assert set(with_active) == set(opted_in)
    assert 15 <= opted_in.count() <= 60  # about 30%
    ended = demo.PushSubscription.objects.filter(~Q(status="active"))
    assert all(s.ended_at for s in ended)


@pytest.mark.parametrize(
    "bulk",
    [
        "--no-bulk",
        pytest.param(
            "--bulk",
            marks=pytest.mark.skipif(
                connection.vendor != "postgresql", reason="the bulk mode is PostgreSQL's"
            ),
        ),
    ],
)
def test_subscriptions_point_at_the_demo_push_service_with_its_keys(settings, bulk):
    settings.PUSH_DEMO_SERVICE_PORT = 8799
    _seed("--customers", "120", "--seed", "3", bulk)
    keys = demo_subscription_keys()
    subscriptions = list(demo.PushSubscription.objects.all())
    assert len(subscriptions) >= 15
    for subscription in subscriptions:
        # Never a push service on the internet: the local demo service, which holds the keys.
        match = re.fullmatch(
            r"http://127\.0\.0\.1:8799/push/demo-([0-9a-f]+)-([0-9]+)", subscription.endpoint
        )
        assert match, subscription.endpoint
        assert int(match[1], 16) == subscription.pk
        assert (subscription.p256dh, subscription.auth) == keys[int(match[2])]
    assert len({s.p256dh for s in subscriptions}) > 10  # drawn from the whole pool


def test_if_empty_adds_nothing_when_customers_exist():
    _seed("--customers", "5")
    _seed("--customers", "50", "--if-empty")
    assert Customer.objects.count() == 5


def test_same_seed_same_shop():
    def rows(seed):
        shop = demo.DemoShop(
            seed=seed,
            customers=60,
            first_ids=dict.fromkeys((t.model for t in demo.TABLES), 1),
            today=date(2026, 1, 15),
            staff_id=1,
        )
        return [shop.chunk(30), shop.chunk(30)]

    assert rows(5) == rows(5)
    assert rows(5) != rows(6)


def _schema(cursor):
    cursor.execute("SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() ORDER BY 1")
    indexes = cursor.fetchall()
    cursor.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE connamespace = current_schema()::regnamespace ORDER BY 1"
    )
    return indexes, cursor.fetchall()


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the bulk mode is PostgreSQL's (COPY, catalog)"
)
def test_bulk_load_restores_every_index_and_constraint_and_keeps_counts_exact(capsys):
    with connection.cursor() as cursor:
        before = _schema(cursor)
    _seed("--customers", "200", "--bulk", "--chunk-size", "70")
    with connection.cursor() as cursor:
        assert _schema(cursor) == before
    assert tab_counts() == {
        "clients": Customer.objects.filter(orders_count__gt=0).count(),
        "leads": Customer.objects.filter(orders_count=0).count(),
    }
    call_command("rebuild_customer_stats", "--check")
    assert "200 customers checked, 0 had drifted" in capsys.readouterr().out


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the visibility map is PostgreSQL's")
@pytest.mark.parametrize("bulk", ["--bulk", "--no-bulk"])
def test_the_loaded_tables_are_vacuumed_so_index_only_scans_skip_the_heap(bulk):
    _seed("--customers", "300", bulk, "--chunk-size", "100")
    with connection.cursor() as cursor:
        for table in demo.TABLES:
            # pg_visibility is not installed: the page counts VACUUM records are the evidence.
            cursor.execute(
                "SELECT c.relpages, c.relallvisible, s.last_vacuum, s.last_analyze "
                "FROM pg_class c JOIN pg_stat_user_tables s ON s.relid = c.oid "
                "WHERE c.oid = %s::regclass",
                [connection.ops.quote_name(table.table)],
            )
            pages, visible, vacuumed, analyzed = cursor.fetchone()
            assert vacuumed is not None and analyzed is not None, table.table
            assert pages > 0 and visible == pages, (table.table, pages, visible)


@pytest.mark.parametrize("bulk", ["--bulk", "--no-bulk"])
def test_the_customers_get_the_groups_the_daily_recompute_would_give(bulk):
    """The demo shop starts as a shop whose recompute has run: the daily recompute then
    changes nobody (it took 258 s at a million customers when it had to write them all)."""
    if bulk == "--bulk" and connection.vendor != "postgresql":
        pytest.skip("the bulk mode is PostgreSQL's")
    _seed("--customers", "300", bulk, "--chunk-size", "100")
    thresholds = Thresholds.objects.get()
    assert thresholds.clients == Customer.objects.filter(orders_count__gt=0).count()
    groups = set(Customer.objects.values_list("lifecycle_group", flat=True))
    assert len(groups) >= 4, groups  # not everyone left as a prospect
    again = lifecycle_recompute(now=thresholds.computed_at)
    assert again.changed == 0
