"""Groups follow orders in the statistics' own statement (payment, refund, import, rebuild);
the recompute, its snapshot and the daily task's scheduling."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from clients.models import Customer
from lifecycle import tasks
from lifecycle.models import GroupSnapshot, Thresholds
from lifecycle.rules import Group
from lifecycle.services import lifecycle_recompute
from orders.models import OrderStatus
from orders.services import (
    ImportedOrder,
    LineInput,
    order_draft,
    order_import_check,
    order_pay,
    order_place,
    order_refund,
    orders_import,
)
from tests.factories import CustomerFactory, make_order

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)


def _group(customer) -> str:
    return Customer.objects.values_list("lifecycle_group", flat=True).get(pk=customer.pk)


def _customer_updates(queries) -> list[str]:
    table = Customer._meta.db_table
    return [
        q["sql"]
        for q in queries
        if q["sql"].lstrip().upper().startswith("UPDATE") and table in q["sql"].split("SET")[0]
    ]


def _pending(customer, total="150.00", placed_at=None):
    return order_place(
        customer=customer,
        number=f"L{customer.pk}-{timezone.now().timestamp()}",
        lines=[LineInput(product_name="Tee", sku="T", quantity=1, unit_price=Decimal(total))],
        placed_at=placed_at,
    )


def test_a_payment_sets_the_group_in_the_statistics_statement():
    customer = CustomerFactory()
    assert _group(customer) == Group.PROSPECTS
    with CaptureQueriesContext(connection) as queries:
        order = _pending(customer)
    # Placing a pending order moves no statistic: neither is the group (no write of the row).
    assert _customer_updates(queries.captured_queries) == []
    assert _group(customer) == Group.PROSPECTS
    with CaptureQueriesContext(connection) as queries:
        order_pay(order=order)
    # One write of the customer's row: the statistics and the group together.
    updates = _customer_updates(queries.captured_queries)
    assert len(updates) == 1 and "lifecycle_group" in updates[0]
    assert _group(customer) == Group.NEW


def test_a_customer_coming_back_leaves_lost_and_a_refund_can_demote():
    customer = CustomerFactory()
    long_ago = timezone.now() - 400 * DAY
    for i in range(3):
        make_order(customer, total="150.00", placed_at=long_ago + i * DAY)
    assert _group(customer) == Group.LOST  # the last order was 398 days ago (fallbacks)
    order = make_order(customer, total="150.00")  # 4 orders, 600 spent, today
    assert _group(customer) == Group.CHAMPIONS
    with CaptureQueriesContext(connection) as queries:
        order_refund(order=order, amount="100.01")  # 499.99 spent: under the top spend
    assert len(_customer_updates(queries.captured_queries)) == 1
    assert _group(customer) == Group.LOYAL


def test_a_rolled_back_payment_leaves_the_group_as_it_was():
    customer = CustomerFactory()
    order = _pending(customer)
    with pytest.raises(RuntimeError), transaction.atomic():
        order_pay(order=order)
        assert _group(customer) == Group.NEW  # inside the transaction, with the statistics
        raise RuntimeError("the call failed after the payment")
    customer.refresh_from_db()
    assert (customer.orders_count, customer.lifecycle_group) == (0, Group.PROSPECTS)


def test_an_old_order_paid_now_counts_from_its_own_date():
    customer = CustomerFactory()
    order = _pending(customer, placed_at=timezone.now() - 100 * DAY)
    order_pay(order=order)
    assert _group(customer) == Group.ABOUT_TO_LOSE  # one order 100 days ago, 150 spent


def test_the_import_and_the_rebuild_keep_the_group_with_the_statistics(capsys):
    customer = CustomerFactory()
    now = timezone.now()
    items = [
        order_import_check(
            ImportedOrder(
                draft=order_draft(
                    number=f"IMP{i}",
                    lines=[
                        LineInput(product_name="Tee", sku="T", quantity=1, unit_price=Decimal(200))
                    ],
                    placed_at=now - (40 - i) * DAY,
                    now=now,
                ),
                customer_id=customer.pk,
                status=OrderStatus.PAID,
            )
        )
        for i in range(4)
    ]
    orders_import(items)
    customer.refresh_from_db()
    assert (customer.orders_count, customer.lifecycle_group) == (4, Group.LOYAL)
    # Statistics changed behind the services' back: the rebuild fixes them and the group.
    Customer.objects.filter(pk=customer.pk).update(orders_count=1, lifecycle_group=Group.LOST)
    call_command("rebuild_customer_stats")
    assert _group(customer) == Group.LOYAL


def test_the_recompute_ages_groups_writes_only_what_moved_and_snapshots_the_day():
    fresh = CustomerFactory()
    make_order(fresh, placed_at=timezone.now() - 10 * DAY)
    CustomerFactory()  # a lead
    assert _group(fresh) == Group.NEW
    later = timezone.now() + 30 * DAY
    result = lifecycle_recompute(now=later)
    assert (result.clients, result.changed) == (1, 1)
    assert _group(fresh) == Group.NEEDS_ATTENTION
    assert Thresholds.objects.get().from_quantiles is False
    snapshot = dict(
        GroupSnapshot.objects.filter(day=timezone.localdate(later)).values_list(
            "group", "customers"
        )
    )
    assert snapshot[Group.NEEDS_ATTENTION] == 1 and snapshot[Group.PROSPECTS] == 1
    assert set(snapshot) == set(Group.values)
    again = lifecycle_recompute(now=later)
    assert again.changed == 0
    assert GroupSnapshot.objects.filter(day=timezone.localdate(later)).count() == len(Group.values)


def test_the_daily_run_is_at_the_configured_hour_in_the_shops_time_zone(settings):
    settings.LIFECYCLE_RECOMPUTE_HOUR = 3
    zone = timezone.get_default_timezone()
    before = timezone.datetime(2026, 12, 1, 2, 59, tzinfo=zone)
    after = timezone.datetime(2026, 12, 1, 3, 0, tzinfo=zone)
    assert tasks.next_run_at(before) == timezone.datetime(2026, 12, 1, 3, tzinfo=zone)
    assert tasks.next_run_at(after) == timezone.datetime(2026, 12, 2, 3, tzinfo=zone)


def test_the_daily_task_keeps_exactly_one_run_waiting(settings):
    from django_tasks_db.models import DBTaskResult

    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    waiting = DBTaskResult.objects.filter(
        status="READY", task_path=tasks.recompute_daily.module_path
    )
    assert tasks.daily_ensure() is True
    assert tasks.daily_ensure() is False
    assert waiting.count() == 1
    assert waiting.get().run_after > timezone.now()
    # The command runs the recompute now and finds the chain in place.
    call_command("lifecycle_recompute", verbosity=0)
    assert waiting.count() == 1


def test_migrate_starts_the_chain_with_a_first_run_right_away(settings):
    from django_tasks_db.models import DBTaskResult

    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    tasks.daily_ensure_after_migrate(using="default")
    runs = DBTaskResult.objects.filter(task_path=tasks.recompute_daily.module_path)
    assert runs.count() == 1
    assert runs.ready().count() == 1  # never computed: due right away
    Thresholds.objects.create(
        pk=1,
        recent_days=1,
        active_days=2,
        lost_days=3,
        top_orders=2,
        top_spent=1,
        computed_at=timezone.now(),
    )
    runs.delete()
    tasks.daily_ensure_after_migrate(using="default")
    assert runs.count() == 1 and runs.ready().count() == 0  # computed: tomorrow's run
