"""Values defined in more than one place agree: the customer statistics (the order services'
computation, the batch computation the rebuild uses, the set-based SQL on PostgreSQL that the
rebuild uses, and the order import's statement adding a batch), and the Clients/Leads
condition (the model's Q objects, the tab-count triggers and the per-tab partial indexes of
clients migration 0004)."""

import importlib
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone

from clients.models import IS_CLIENT, IS_LEAD, LATEST_ORDER_DATES, Customer
from lifecycle.rules import Group
from lifecycle.services import lifecycle_recompute
from orders.models import OrderStatus
from orders.selectors import CustomerStats, customer_stats_compute, customer_stats_for
from orders.services import (
    ImportedOrder,
    LineInput,
    _customers_stats_refresh,
    order_draft,
    order_import_check,
    orders_import,
)
from tests.factories import CustomerFactory, make_order

pytestmark = pytest.mark.django_db

LIST_INDEXES = importlib.import_module("clients.migrations.0004_postgres_list_indexes")


@pytest.fixture
def shop():
    """Customers whose statistics are easy to get wrong: no order, only pending and cancelled
    orders, full and partial refunds, orders paid in another order than they were placed,
    several finalized orders placed at the same instant (the id breaks the tie), and a later
    pending order that must not count."""
    at = timezone.now().replace(microsecond=0) - timedelta(days=30)
    lead = CustomerFactory()
    browser = CustomerFactory()
    make_order(browser, status=OrderStatus.PENDING, placed_at=at)
    make_order(browser, status=OrderStatus.CANCELLED, placed_at=at + timedelta(days=1))
    refunded = CustomerFactory()
    make_order(refunded, status=OrderStatus.REFUNDED, total="30.00", placed_at=at)
    # Placed on days 0, 4, 1, 3, 2, 10, 6, 9, 5, 8, 7 and paid in that order: each payment
    # lands at another place among the latest dates, and the eleventh is past the ten stored.
    unordered = CustomerFactory()
    for day in (0, 4, 1, 3, 2, 10, 6, 9, 5, 8, 7):
        make_order(unordered, placed_at=at + timedelta(days=day))
    tied = CustomerFactory()
    make_order(tied, total="10.00", placed_at=at, source="google", medium="cpc")
    make_order(tied, total="20.00", placed_at=at + timedelta(days=2), source="a", medium="b")
    make_order(
        tied,
        status=OrderStatus.FULFILLED,
        total="5.55",
        refunded="1.05",
        placed_at=at + timedelta(days=2),
        source="newsletter",
        medium="email",
    )
    make_order(tied, status=OrderStatus.PENDING, placed_at=at + timedelta(days=3), source="x")
    return [lead, browser, refunded, unordered, tied]


def test_the_two_orm_computations_agree(shop):
    batch = customer_stats_for([c.pk for c in shop])
    for customer in shop:
        assert customer_stats_compute(customer_id=customer.pk) == batch[customer.pk]
    tied = batch[shop[-1].pk]
    assert (tied.orders_count, tied.total_spent) == (3, Decimal("34.50"))
    assert (tied.last_source, tied.last_medium) == ("newsletter", "email")  # the higher id
    assert batch[shop[2].pk].orders_count == 1 and batch[shop[2].pk].total_spent == 0
    assert (tied.second_last_order_at, tied.third_last_order_at) == (
        tied.last_order_at,
        tied.last_order_at - timedelta(days=2),
    )
    assert tied.fourth_last_order_at is None
    unordered = batch[shop[3].pk]
    assert [getattr(unordered, column) for column in LATEST_ORDER_DATES] == [
        unordered.last_order_at - timedelta(days=days) for days in range(10)
    ]


def test_the_services_store_what_the_computations_define(shop, capsys):
    for customer in Customer.objects.filter(pk__in=[c.pk for c in shop]):
        stored = CustomerStats(**{f: getattr(customer, f) for f in CustomerStats.FIELDS})
        assert stored == customer_stats_compute(customer_id=customer.pk)
    # The rebuild (its SQL on PostgreSQL, the batch computation elsewhere) agrees: no drift.
    call_command("rebuild_customer_stats", "--check")
    assert f"{len(shop)} customers checked, 0 had drifted" in capsys.readouterr().out


WRONG_VALUES = {
    "orders_count": 7,
    "total_spent": Decimal("34.49"),
    "first_order_at": timezone.now() - timedelta(days=400),
    "last_order_at": timezone.now() - timedelta(days=1),
    "last_order_id": None,
    "last_source": "google",
    "last_medium": "cpc",
    "second_last_order_at": timezone.now() - timedelta(days=2),
    "third_last_order_at": None,
    "fourth_last_order_at": timezone.now() - timedelta(days=3),
    "fifth_last_order_at": timezone.now() - timedelta(days=4),
    "sixth_last_order_at": timezone.now() - timedelta(days=5),
    "seventh_last_order_at": timezone.now() - timedelta(days=6),
    "eighth_last_order_at": timezone.now() - timedelta(days=7),
    "ninth_last_order_at": timezone.now() - timedelta(days=8),
    "tenth_last_order_at": timezone.now() - timedelta(days=9),
}


@pytest.mark.parametrize("field", CustomerStats.FIELDS)
def test_the_rebuild_finds_a_drift_in_every_statistic(shop, field, capsys):
    """Each field, changed behind the services' back, is found and fixed by the rebuild (its
    SQL finds the customer on PostgreSQL, the ORM computation recomputes it)."""
    assert set(WRONG_VALUES) == set(CustomerStats.FIELDS)
    tied = shop[-1]
    Customer.objects.filter(pk=tied.pk).update(**{field: WRONG_VALUES[field]})
    with pytest.raises(SystemExit):
        call_command("rebuild_customer_stats", "--check")
    assert "1 had drifted" in capsys.readouterr().out
    call_command("rebuild_customer_stats")
    call_command("rebuild_customer_stats", "--check")
    assert ", 0 had drifted." in capsys.readouterr().out
    tied.refresh_from_db()
    assert getattr(tied, field) == getattr(customer_stats_compute(customer_id=tied.pk), field)


@pytest.mark.parametrize("field", CustomerStats.FIELDS)
def test_the_order_imports_refresh_recomputes_every_statistic(shop, field):
    """The import's recompute where there is no PostgreSQL (the batch computation) writes what
    the computations define, for each field changed behind the services' back, and for
    customers with no finalized order too (run on PostgreSQL as well: it is plain ORM)."""
    ids = [c.pk for c in shop]
    Customer.objects.filter(pk__in=ids).update(**{field: WRONG_VALUES[field]})
    with transaction.atomic():
        _customers_stats_refresh(ids)
    for customer in Customer.objects.filter(pk__in=ids):
        stored = CustomerStats(**{f: getattr(customer, f) for f in CustomerStats.FIELDS})
        assert stored == customer_stats_compute(customer_id=customer.pk), customer.pk


def _import_item(customer, number, at, status, total="10.00", refunded=None, source="s"):
    draft = order_draft(
        number=number,
        lines=[LineInput(product_name="Tee", sku="T", quantity=1, unit_price=Decimal(total))],
        placed_at=at,
        source=source,
        medium=f"m-{number}",
    )
    return order_import_check(
        ImportedOrder(
            draft=draft,
            customer_id=customer.pk,
            status=status,
            refunded_amount=Decimal(refunded) if refunded is not None else None,
        )
    )


def test_the_imports_statistics_add_what_the_computations_define(shop):
    """The import adds a batch to its customers' statistics (on PostgreSQL one statement,
    `_STATS_ADD_SQL`, from what the batch changed, as payments and refunds do; elsewhere the
    recompute): afterwards every customer's statistics are what the computations give, for
    orders created finalized, older than the first, tied on placed_at with the last (the id
    breaks the tie), pending orders paid by a later batch, refunds added to finalized orders,
    and orders that change no statistic; several orders of one customer in a batch, newer,
    between and older than its ten latest dates."""
    lead, browser, refunded, unordered, tied = shop
    at = timezone.now().replace(microsecond=0) - timedelta(days=30)
    paid, fulfilled, pending = OrderStatus.PAID, OrderStatus.FULFILLED, OrderStatus.PENDING
    first = orders_import(
        [
            _import_item(lead, "AD-1", at + timedelta(days=5), paid, refunded="2.50"),
            _import_item(lead, "AD-2", at + timedelta(days=5), fulfilled, source="later id"),
            _import_item(lead, "AD-3", at + timedelta(days=6), pending),
            _import_item(browser, "AD-4", at - timedelta(days=9), OrderStatus.REFUNDED),
            _import_item(tied, "AD-5", at + timedelta(days=2), paid, total="1.00", source="tie"),
            _import_item(tied, "AD-6", at - timedelta(days=1), fulfilled, total="3.00"),
            _import_item(refunded, "AD-7", at + timedelta(days=1), pending),
            _import_item(unordered, "AD-9", at + timedelta(days=2, hours=12), paid),
            _import_item(unordered, "AD-10", at + timedelta(days=10), fulfilled),
            _import_item(unordered, "AD-11", at - timedelta(days=5), paid),
            _import_item(unordered, "AD-12", at + timedelta(days=3), paid),
        ]
    )
    assert [r[0] for r in first] == ["created"] * 11
    second = orders_import(
        [
            _import_item(lead, "AD-1", at + timedelta(days=5), paid, refunded="4.00"),
            _import_item(lead, "AD-2", at + timedelta(days=5), fulfilled, source="later id"),
            _import_item(lead, "AD-3", at + timedelta(days=6), OrderStatus.REFUNDED),
            _import_item(tied, "AD-5", at + timedelta(days=2), fulfilled, total="1.00"),
            _import_item(refunded, "AD-7", at + timedelta(days=1), paid, refunded="1.00"),
            _import_item(refunded, "AD-8", at + timedelta(days=25), pending),
        ]
    )
    updated, unchanged, created = "updated", "unchanged", "created"
    assert [r[0] for r in second] == [updated, unchanged, updated, updated, updated, created]
    for customer in Customer.objects.filter(pk__in=[c.pk for c in shop]):
        stored = CustomerStats(**{f: getattr(customer, f) for f in CustomerStats.FIELDS})
        assert stored == customer_stats_compute(customer_id=customer.pk), customer.pk
    lead_stats = customer_stats_compute(customer_id=lead.pk)
    assert (lead_stats.orders_count, lead_stats.total_spent) == (3, Decimal("16.00"))
    assert lead_stats.last_order_at == at + timedelta(days=6)
    assert customer_stats_compute(customer_id=tied.pk).last_source == "tie"
    unordered_stats = customer_stats_compute(customer_id=unordered.pk)
    assert unordered_stats.orders_count == 15
    # Newest first: AD-10 and day 10, days 9 to 4, then AD-12 (day 3, a higher id than the
    # day-3 order), day 3, AD-9 (day 2.5).
    assert unordered_stats.ninth_last_order_at == at + timedelta(days=3)
    assert unordered_stats.tenth_last_order_at.date() == (at + timedelta(days=3)).date()
    assert lifecycle_recompute().changed == 0


# --- Clients and Leads --------------------------------------------------------------------


def _ids_where(condition: str) -> set[int]:
    table = connection.ops.quote_name(Customer._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id FROM {table} WHERE {condition}")
        return {row[0] for row in cursor.fetchall()}


def test_the_migrations_tab_conditions_select_what_the_model_calls_clients_and_leads():
    for count in (0, 1, 2, 40):
        Customer.objects.filter(pk=CustomerFactory().pk).update(orders_count=count)
    clients = set(Customer.objects.filter(IS_CLIENT).values_list("pk", flat=True))
    leads = set(Customer.objects.filter(IS_LEAD).values_list("pk", flat=True))
    assert clients and leads and not clients & leads
    assert clients | leads == set(Customer.objects.values_list("pk", flat=True))
    assert _ids_where(LIST_INDEXES.TABS["clients"]) == clients
    assert _ids_where(LIST_INDEXES.TABS["leads"]) == leads


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the triggers are PostgreSQL's")
def test_the_installed_triggers_and_partial_indexes_use_the_tab_conditions():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT proname, pg_get_functiondef(oid) FROM pg_proc "
            "WHERE proname LIKE 'clients_tab_count_%%'"
        )
        functions = dict(cursor.fetchall())
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s",
            [Customer._meta.db_table],
        )
        indexes = dict(cursor.fetchall())
    assert {"clients_tab_count_insert", "clients_tab_count_delete"} <= set(functions)
    conditions = set(LIST_INDEXES.TABS.values())
    for name, source in functions.items():
        found = {
            f"orders_count {op} {value}"
            for op, value in re.findall(r"orders_count\s*(>=|<=|<>|>|<|=)\s*(\d+)", source)
        }
        assert found <= conditions, (name, found)
    # Every per-tab partial index is restricted to its tab (PostgreSQL writes the predicate
    # back in parentheses).
    for tab, condition in LIST_INDEXES.TABS.items():
        tab_indexes = {n: d for n, d in indexes.items() if n.startswith(f"customer_{tab}_")}
        assert tab_indexes, tab
        for name, definition in tab_indexes.items():
            assert f"({condition})" in definition, name


# --- Lifecycle groups ---------------------------------------------------------------------


def test_the_group_each_statistics_statement_writes_is_the_one_the_recompute_decides(shop):
    """The group is written by three statements besides the recompute (a payment, a refund,
    and the import's: `_STATS_ADD_SQL` on PostgreSQL), each with
    lifecycle.rules.group_sql over its own expressions of the new statistics: a recompute
    right after finds nothing to change."""
    imported = CustomerFactory()
    at = timezone.now() - timedelta(days=100)
    orders_import(
        [
            order_import_check(
                ImportedOrder(
                    draft=order_draft(
                        number=f"DD{i}",
                        lines=[
                            LineInput(
                                product_name="Tee", sku="T", quantity=1, unit_price=Decimal(300)
                            )
                        ],
                        placed_at=at + timedelta(days=i),
                    ),
                    customer_id=imported.pk,
                    status=OrderStatus.PAID,
                )
            )
            for i in range(2)
        ]
    )
    assert Customer.objects.get(pk=imported.pk).lifecycle_group == Group.AT_RISK
    assert lifecycle_recompute().changed == 0


def test_the_stored_launch_source_and_push_click_fill_agrees_with_the_services():
    """clients migration 0020 fills Customer.last_launch_source and push_opened with its own
    copy of the definitions that storefront.services and notifications.services keep."""
    from notifications.models import Campaign, Delivery, PushSubscription
    from notifications.services import (
        customers_push_opened_mismatches,
        customers_push_opened_refresh,
    )
    from storefront.models import Launch
    from storefront.services import (
        customers_launch_source_mismatches,
        customers_launch_source_refresh,
    )

    fill = importlib.import_module("clients.migrations.0021_launch_source_push_opened").FILL_SQL
    now = timezone.now()
    customers = [CustomerFactory() for _ in range(4)]
    # Rows written directly, as an import or an older version would have left them.
    for customer, sources in zip(
        customers, [["google", ""], ["", "bing", "tiktok"], [""], []], strict=True
    ):
        for k, source in enumerate(sources):
            Launch.objects.create(
                customer=customer,
                occurred_at=now - timedelta(days=10 - k),
                received_at=now,
                source=source,
                platform="web",
            )
    # Two launches at the same instant: the higher id is the later one.
    for source in ("instagram", "facebook"):
        Launch.objects.create(
            customer=customers[3], occurred_at=now, received_at=now, source=source, platform="web"
        )
    campaign = Campaign.objects.create(
        title="t",
        body="b",
        audience_tab="clients",
        audience_kind="all",
        public_base_url="https://example.com/",
        created_at=now,
        send_at=now,
    )
    for n, customer in enumerate(customers[:3]):
        subscription = PushSubscription.objects.create(
            customer=customer,
            endpoint=f"https://p.example/{n}",
            p256dh="k",
            auth="a",
            created_at=now,
        )
        Delivery.objects.create(
            campaign=campaign,
            subscription=subscription,
            batch=0,
            status="sent",
            clicked_at=now if n != 1 else None,
        )
    assert customers_launch_source_mismatches() == 3
    assert customers_push_opened_mismatches() == 2
    with connection.cursor() as cursor:
        for sql in fill:
            cursor.execute(sql)
    assert customers_launch_source_mismatches() == 0
    assert customers_push_opened_mismatches() == 0
    assert customers_launch_source_refresh() == 0
    assert customers_push_opened_refresh() == 0
    stored = dict(Customer.objects.values_list("pk", "last_launch_source"))
    assert [stored[c.pk] for c in customers] == ["google", "tiktok", "", "facebook"]
    opened = set(Customer.objects.filter(push_opened=True).values_list("pk", flat=True))
    assert opened == {customers[0].pk, customers[2].pk}
