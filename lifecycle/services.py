"""The daily recompute of the lifecycle groups: thresholds from the shop's distribution, then
every customer's group, set-based, then the day's counts for the dashboard.

Between two recomputes the order services keep each customer's group in step with its
statistics (orders/services.py embeds lifecycle.rules.group_sql in the statistics' own
statements). What only time changes (a customer drifting from Loyal to At risk because no
order came) is caught by the recompute, once a day.
"""

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from django.db import connection, transaction
from django.utils import timezone

from clients.models import IS_CLIENT, Customer
from lifecycle.models import GroupSnapshot, Thresholds
from lifecycle.rules import (
    ACTIVE_QUANTILE,
    DAY,
    FALLBACK,
    LOST_QUANTILE,
    MIN_CLIENTS,
    RECENT_QUANTILE,
    TOP_QUANTILE,
    Group,
    Rules,
    group_sql,
    rules_from_quantiles,
)
from lifecycle.selectors import group_counts_now
from orders.models import FINALIZED_STATUSES, Order

# Customers updated per statement (and transaction): each chunk holds its rows' locks only
# while it runs, so order payments wait at most one chunk.
CHUNK = 20_000


@dataclass(frozen=True)
class RecomputeResult:
    clients: int
    changed: int
    thresholds: Rules


def _quantile(queryset, field: str, q: float, count: int):
    """The q-quantile of `field` over `queryset` (percentile_disc: the value at rank
    ceil(q * count)), read with ORDER BY ... OFFSET, which the Clients tab's sort indexes
    serve on PostgreSQL."""
    offset = max(0, math.ceil(q * count) - 1)
    return queryset.order_by(field).values_list(field.lstrip("-"), flat=True)[offset]


def thresholds_compute(*, now: datetime) -> tuple[Rules, int]:
    """The shop's thresholds (quantiles of its clients, or the fallbacks for a small shop)
    and the number of clients they come from."""
    clients = Customer.objects.filter(IS_CLIENT)
    count = clients.count()
    if count < MIN_CLIENTS:
        return FALLBACK, count

    def recency_days(q: float) -> float:
        # The q-quantile of "days since the last order" is the (1 - q)-quantile of the
        # last order's time: the most recent first.
        last = _quantile(clients, "-last_order_at", q, count)
        return (now - last) / DAY

    rules = rules_from_quantiles(
        recent=recency_days(RECENT_QUANTILE),
        active=recency_days(ACTIVE_QUANTILE),
        lost=recency_days(LOST_QUANTILE),
        top_orders=_quantile(clients, "orders_count", TOP_QUANTILE, count),
        top_spent=Decimal(_quantile(clients, "total_spent", TOP_QUANTILE, count)),
    )
    return rules, count


def _recompute_sql(vendor: str) -> str:
    table = connection.ops.quote_name(Customer._meta.db_table)
    case = group_sql(
        vendor, n="orders_count", spent="total_spent", last="last_order_at", now="%(now)s"
    )
    # Only the rows whose group moves are written (a customers row costs an entry in each of
    # its ~25 indexes).
    return (
        f"UPDATE {table} SET lifecycle_group = {case} "
        f"WHERE id >= %(low)s AND id < %(high)s AND lifecycle_group <> {case}"
    )


def lifecycle_recompute(*, now: datetime | None = None, chunk: int = CHUNK) -> RecomputeResult:
    """Recompute the thresholds, every customer's group and today's counts (safe to run
    twice: a second run finds nothing to change)."""
    now = now or timezone.now()
    rules, clients = thresholds_compute(now=now)
    Thresholds.objects.update_or_create(
        pk=1,
        defaults={
            "recent_days": rules.recent_days,
            "active_days": rules.active_days,
            "lost_days": rules.lost_days,
            "top_orders": rules.top_orders,
            "top_spent": rules.top_spent,
            "clients": clients,
            "from_quantiles": rules is not FALLBACK,
            "computed_at": now,
        },
    )
    sql = _recompute_sql(connection.vendor)
    now_param = connection.ops.adapt_datetimefield_value(now)
    top = Customer.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    changed = 0
    for low in range(0, top + 1, chunk):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, {"now": now_param, "low": low, "high": low + chunk})
            changed += cursor.rowcount
    snapshot_take(day=timezone.localdate(now))
    return RecomputeResult(clients=clients, changed=changed, thresholds=rules)


def customers_group_refresh(customer_ids: list[int]) -> None:
    """Set these customers' groups from their stored statistics now (for the writes that
    recompute statistics outside the order services' statements: the bulk import on SQLite,
    the statistics rebuild)."""
    if not customer_ids:
        return
    table = connection.ops.quote_name(Customer._meta.db_table)
    case = group_sql(connection.vendor, n="orders_count", spent="total_spent", last="last_order_at")
    with connection.cursor() as cursor:
        for start in range(0, len(customer_ids), 500):
            ids = customer_ids[start : start + 500]
            marks = ", ".join(["%s"] * len(ids))
            cursor.execute(
                f"UPDATE {table} SET lifecycle_group = {case} WHERE id IN ({marks}) "
                f"AND lifecycle_group <> {case}",
                ids,
            )


@transaction.atomic
def snapshot_take(*, day) -> dict[str, int]:
    """Store how many customers each group holds now, as the day's snapshot (replacing one
    taken earlier that day)."""
    counts = group_counts_now()
    GroupSnapshot.objects.filter(day=day).delete()
    GroupSnapshot.objects.bulk_create(
        GroupSnapshot(day=day, group=group, customers=counts.get(group, 0))
        for group in Group.values
    )
    return counts


# The temporary table snapshot_from_history aggregates the orders into (one row per client).
_HISTORY = "lifecycle_history"


def snapshot_from_history(*, day: date) -> dict[str, int] | None:
    """Reconstruct the snapshot of a past `day` from the order history, for a shop that has
    its history but no snapshot that old yet (a new install, an import): each customer's
    finalized orders placed by the end of that day, thresholds from their distribution then,
    groups as the rules gave them then; customers created by then without such an order are
    Prospects. Orders count with their status and refunds as they are now (a refund made
    since is taken off already): the dashboard says the snapshot was reconstructed.

    Set-based (one aggregate of the orders into a temporary table, then a few queries over
    it). Returns the counts, or None when the day already has a snapshot: a real one is
    never replaced."""
    if GroupSnapshot.objects.filter(day=day).exists():
        return None
    end = timezone.make_aware(datetime.combine(day + timedelta(days=1), time.min))
    end_param = connection.ops.adapt_datetimefield_value(end)
    orders = connection.ops.quote_name(Order._meta.db_table)
    customers = connection.ops.quote_name(Customer._meta.db_table)
    statuses = ", ".join(["%s"] * len(FINALIZED_STATUSES))
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {_HISTORY}")
        cursor.execute(
            f"CREATE TEMPORARY TABLE {_HISTORY} AS SELECT customer_id AS id, COUNT(*) AS n, "
            f"SUM(total - refunded_amount) AS spent, MAX(placed_at) AS last FROM {orders} "
            f"WHERE status IN ({statuses}) AND placed_at < %s GROUP BY customer_id",
            [*map(str, FINALIZED_STATUSES), end_param],
        )
        cursor.execute(f"SELECT COUNT(*) FROM {_HISTORY}")
        clients = cursor.fetchone()[0]
        rules = FALLBACK if clients < MIN_CLIENTS else _history_rules(cursor, clients, end)
        case = group_sql(
            connection.vendor, n="n", spent="spent", last="last", now="%s", rules=rules
        )
        cursor.execute(
            f"SELECT grp, COUNT(*) FROM (SELECT {case} AS grp FROM {_HISTORY}) AS g GROUP BY grp",
            [end_param] * case.count("%s"),
        )
        counts = {group: count for group, count in cursor.fetchall()}
        cursor.execute(
            f"SELECT COUNT(*) FROM {customers} AS c WHERE c.created_at < %s "
            f"AND NOT EXISTS (SELECT 1 FROM {_HISTORY} AS h WHERE h.id = c.id)",
            [end_param],
        )
        counts[Group.PROSPECTS] = counts.get(Group.PROSPECTS, 0) + cursor.fetchone()[0]
        cursor.execute(f"DROP TABLE {_HISTORY}")
        GroupSnapshot.objects.bulk_create(
            GroupSnapshot(day=day, group=group, customers=counts.get(group, 0), from_history=True)
            for group in Group.values
        )
    return counts


def _history_rules(cursor, clients: int, end: datetime) -> Rules:
    """thresholds_compute's quantiles, over the clients of the history table at `end`."""

    def quantile(column: str, q: float, descending: bool = False):
        offset = max(0, math.ceil(q * clients) - 1)
        order = f"{column} DESC, id DESC" if descending else f"{column}, id"
        cursor.execute(
            f"SELECT {column} FROM {_HISTORY} ORDER BY {order} LIMIT 1 OFFSET %s", [offset]
        )
        return cursor.fetchone()[0]

    def recency_days(q: float) -> float:
        last = quantile("last", q, descending=True)
        if isinstance(last, str):  # SQLite gives the aggregate back as text
            last = datetime.fromisoformat(last)
        if timezone.is_naive(last):  # SQLite: stored in UTC
            last = last.replace(tzinfo=UTC)
        return (end - last) / DAY

    return rules_from_quantiles(
        recent=recency_days(RECENT_QUANTILE),
        active=recency_days(ACTIVE_QUANTILE),
        lost=recency_days(LOST_QUANTILE),
        top_orders=quantile("n", TOP_QUANTILE),
        top_spent=Decimal(str(quantile("spent", TOP_QUANTILE))),
    )
