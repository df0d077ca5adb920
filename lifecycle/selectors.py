"""Reads of the lifecycle groups: counts and their movement, the Overdue work list, one
customer's group explained."""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.contrib.humanize.templatetags.humanize import intcomma
from django.db import connection
from django.db.models import BooleanField, Count, QuerySet
from django.db.models.expressions import RawSQL
from django.utils import timezone

from clients.models import IS_CLIENT, Customer
from clients.selectors import tab_counts
from lifecycle.models import GroupSnapshot, Thresholds
from lifecycle.rules import (
    DAY,
    FALLBACK,
    OVERDUE_GROUPS,
    Group,
    Rules,
    expected_next_order,
    group_of,
    reason,
    usual_interval,
)

MOVEMENT_DAYS = 30


def group_counts_now() -> dict[str, int]:
    """Customers per group, now: the clients grouped (the Clients tab's group index serves
    it on PostgreSQL) and the leads, all prospects, from the tab counts."""
    rows = (
        Customer.objects.filter(IS_CLIENT)
        .order_by()
        .values_list("lifecycle_group")
        .annotate(n=Count("pk"))
    )
    counts = dict(rows)
    counts[Group.PROSPECTS] = counts.get(Group.PROSPECTS, 0) + tab_counts()["leads"]
    return counts


@dataclass(frozen=True)
class Movement:
    group: str
    label: str
    now: int
    then: int | None

    @property
    def change(self) -> int | None:
        return None if self.then is None else self.now - self.then

    @property
    def change_text(self) -> str:
        """ "+12", "−5", "0", or "—" without a snapshot to compare with."""
        change = self.change
        if change is None:
            return "—"
        sign = "+" if change > 0 else "−" if change < 0 else ""
        return sign + intcomma(abs(change))


def group_movement(*, today: date) -> tuple[list[Movement], date | None, bool]:
    """Each group's size now and in the daily snapshot of MOVEMENT_DAYS ago (or the oldest
    one, for a shop younger than that); the snapshot's day, or None without any; whether that
    snapshot was reconstructed from the order history (snapshot_from_history)."""
    counts = group_counts_now()
    target = today - timedelta(days=MOVEMENT_DAYS)
    snapshots = GroupSnapshot.objects.order_by("-day")
    day = snapshots.filter(day__lte=target).values_list("day", flat=True).first()
    if day is None:
        day = (
            GroupSnapshot.objects.filter(day__lt=today)
            .order_by("day")
            .values_list("day", flat=True)
            .first()
        )
    stored = (
        GroupSnapshot.objects.filter(day=day).values_list("group", "customers", "from_history")
        if day
        else []
    )
    then = {group: customers for group, customers, _ in stored}
    reconstructed = any(from_history for _, _, from_history in stored)
    rows = [
        Movement(
            group=group,
            label=Group(group).label,
            now=counts.get(group, 0),
            then=then.get(group) if day else None,
        )
        for group in Group.values
    ]
    return rows, day, reconstructed


def current_rules() -> tuple[Rules, Thresholds | None]:
    """The thresholds in force (the fallbacks until the first recompute)."""
    row = Thresholds.objects.filter(pk=1).first()
    if row is None:
        return FALLBACK, None
    return (
        Rules(
            recent_days=row.recent_days,
            active_days=row.active_days,
            lost_days=row.lost_days,
            top_orders=row.top_orders,
            top_spent=row.top_spent,
        ),
        row,
    )


def _overdue_condition() -> str:
    table = connection.ops.quote_name(Customer._meta.db_table)
    last, first, n = (f"{table}.{c}" for c in ("last_order_at", "first_order_at", "orders_count"))
    if connection.vendor == "postgresql":
        sql = f"{last} + GREATEST(({last} - {first}) / NULLIF({n} - 1, 0), interval '1 day') < %s"
    else:
        sql = (
            f"julianday({last}) + MAX((julianday({last}) - julianday({first})) "
            f"/ NULLIF({n} - 1, 0), 1) < julianday(%s)"
        )
    return sql


def _start_of_day(now: datetime) -> datetime:
    """Midnight of `now`'s day in the shop's time zone."""
    return timezone.make_aware(datetime.combine(timezone.localdate(now), time.min))


def overdue_customers(*, now: datetime) -> QuerySet[Customer]:
    """Customers past their expected next order (two orders or more, not lost), the most
    valuable first: the daily work list. Read from the Clients tab's total spent index.

    Past means past its day, in the shop's time zone: a customer expected today is not late
    yet (and one expected yesterday evening is late by one day, not by "0 days")."""
    now_param = connection.ops.adapt_datetimefield_value(_start_of_day(now))
    return (
        Customer.objects.filter(IS_CLIENT, orders_count__gte=2, lifecycle_group__in=OVERDUE_GROUPS)
        .alias(overdue=RawSQL(_overdue_condition(), (now_param,), output_field=BooleanField()))
        .filter(overdue=True)
        .order_by("-total_spent", "-id")
        .only(
            "id",
            "first_name",
            "last_name",
            "email",
            "orders_count",
            "total_spent",
            "first_order_at",
            "last_order_at",
            "lifecycle_group",
        )
    )


@dataclass(frozen=True)
class Lifecycle:
    """One customer's group, explained."""

    group: str
    label: str
    reason: str
    expected_next_order: datetime | None
    usual_interval_days: int | None
    overdue_days: int | None


def customer_lifecycle(customer: Customer, *, now: datetime) -> Lifecycle:
    """A customer's group with its reason and expected next order (no query once the
    groups have been computed)."""
    group = customer.lifecycle_group
    if group not in Group.values or (group == Group.PROSPECTS and customer.orders_count):
        # Not decided yet (a client before the first recompute after the upgrade): decided
        # now, as the recompute will (one query, in that case only).
        group = group_of(
            orders_count=customer.orders_count,
            total_spent=customer.total_spent,
            last_order_at=customer.last_order_at,
            now=now,
            rules=current_rules()[0],
        )
    stats = {
        "orders_count": customer.orders_count,
        "first_order_at": customer.first_order_at,
        "last_order_at": customer.last_order_at,
    }
    expected = expected_next_order(**stats)
    interval = usual_interval(**stats)
    overdue = None
    if expected is not None and expected < _start_of_day(now):
        overdue = (timezone.localdate(now) - timezone.localdate(expected)).days
    return Lifecycle(
        group=group,
        label=Group(group).label,
        reason=reason(group=group, total_spent=customer.total_spent, now=now, **stats),
        expected_next_order=expected,
        usual_interval_days=None if interval is None else max(1, round(interval / DAY)),
        overdue_days=overdue,
    )
