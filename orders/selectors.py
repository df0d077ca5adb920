"""Reads of orders, shaped for the pages and commands that use them."""

import functools
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

from django.conf import settings
from django.db import connection
from django.db.models import Count, F, Max, Min, Prefetch, QuerySet, Sum
from django.db.models.functions import TruncMonth
from django.utils import timezone

from backoffice.compiled import CompiledQuery
from clients.models import LATEST_ORDER_DATES
from orders.models import FINALIZED_STATUSES, Order, OrderLine

ZERO = Decimal("0.00")


@dataclass(frozen=True)
class CustomerStats:
    orders_count: int
    total_spent: Decimal
    first_order_at: datetime | None
    last_order_at: datetime | None
    last_order_id: int | None
    last_source: str
    last_medium: str
    # The dates of the second to tenth latest finalized orders (LATEST_ORDER_DATES).
    second_last_order_at: datetime | None
    third_last_order_at: datetime | None
    fourth_last_order_at: datetime | None
    fifth_last_order_at: datetime | None
    sixth_last_order_at: datetime | None
    seventh_last_order_at: datetime | None
    eighth_last_order_at: datetime | None
    ninth_last_order_at: datetime | None
    tenth_last_order_at: datetime | None

    FIELDS = (
        "orders_count",
        "total_spent",
        "first_order_at",
        "last_order_at",
        "last_order_id",
        "last_source",
        "last_medium",
        *LATEST_ORDER_DATES[1:],
    )


def customer_stats_compute(*, customer_id: int) -> CustomerStats:
    """The customer's statistics computed from its orders, the source of truth."""
    finalized = Order.objects.filter(customer_id=customer_id, status__in=FINALIZED_STATUSES)
    agg = finalized.aggregate(
        count=Count("id"),
        spent=Sum(F("total") - F("refunded_amount")),
        first=Min("placed_at"),
        last=Max("placed_at"),
    )
    latest = list(
        finalized.order_by("-placed_at", "-id").values("id", "source", "medium", "placed_at")[
            : len(LATEST_ORDER_DATES)
        ]
    )
    last = latest[0] if latest else None
    dates = [row["placed_at"] for row in latest] + [None] * len(LATEST_ORDER_DATES)
    return CustomerStats(
        orders_count=agg["count"],
        total_spent=Decimal(agg["spent"] or ZERO).quantize(ZERO),
        first_order_at=agg["first"],
        last_order_at=agg["last"],
        last_order_id=last["id"] if last else None,
        last_source=last["source"] if last else "",
        last_medium=last["medium"] if last else "",
        **dict(zip(LATEST_ORDER_DATES[1:], dates[1:], strict=False)),
    )


def customer_stats_for(customer_ids: list[int]) -> dict[int, CustomerStats]:
    """Statistics computed from the orders for many customers at once (two queries)."""
    finalized = Order.objects.filter(customer_id__in=customer_ids, status__in=FINALIZED_STATUSES)
    totals = {
        row["customer_id"]: row
        for row in finalized.values("customer_id").annotate(
            count=Count("id"),
            spent=Sum(F("total") - F("refunded_amount")),
            first=Min("placed_at"),
            last=Max("placed_at"),
        )
    }
    last_orders, dates = {}, {}
    for row in finalized.order_by("customer_id", "placed_at", "id").values_list(
        "customer_id", "id", "source", "medium", "placed_at"
    ):
        last_orders[row[0]] = row[1:4]  # ascending order: the last one seen wins
        seen = dates.setdefault(row[0], [None] * len(LATEST_ORDER_DATES))
        seen[:] = [row[4], *seen[:-1]]  # the latest ones, newest first
    stats = {}
    for customer_id in customer_ids:
        agg = totals.get(customer_id)
        last_id, source, medium = last_orders.get(customer_id, (None, "", ""))
        latest = dates.get(customer_id, [None] * len(LATEST_ORDER_DATES))
        stats[customer_id] = CustomerStats(
            orders_count=agg["count"] if agg else 0,
            total_spent=Decimal(agg["spent"] or ZERO).quantize(ZERO) if agg else ZERO,
            first_order_at=agg["first"] if agg else None,
            last_order_at=agg["last"] if agg else None,
            last_order_id=last_id,
            last_source=source,
            last_medium=medium,
            **dict(zip(LATEST_ORDER_DATES[1:], latest[1:], strict=True)),
        )
    return stats


def latest_dates_sql(table: str) -> str:
    """The stats' at_2 ... at_K columns (LATEST_ORDER_DATES after the first) of `table`."""
    return ", ".join(f"{table}.at_{k}" for k in range(2, len(LATEST_ORDER_DATES) + 1))


def customer_stats_sql(*, where: str = "") -> str:
    """PostgreSQL: the customer statistics as SQL, the set-based form of customer_stats_for.

    `WITH` clauses ending in `stats(customer_id, n, spent, first_at, last_at, last_id,
    source, medium, at_2, at_3, ...)`, one row per customer with a finalized order
    (`where` narrows the orders read, e.g. "AND customer_id = ANY(%(ids)s)"; `%(statuses)s`
    is FINALIZED_STATUSES). The rebuild's drift check is written on it, and
    tests/test_derived_definitions.py checks it against the ORM
    computations field by field.
    """
    _leads = ", ".join(
        f"lead(placed_at, {k - 1}) OVER latest AS at_{k}"
        for k in range(2, len(LATEST_ORDER_DATES) + 1)
    )
    return f"""
WITH finalized AS (
    SELECT customer_id, id, placed_at, total - refunded_amount AS net, source, medium
    FROM {connection.ops.quote_name(Order._meta.db_table)}
    WHERE status = ANY(%(statuses)s) {where}
), totals AS (
    SELECT customer_id, count(*) AS n, sum(net) AS spent,
           min(placed_at) AS first_at, max(placed_at) AS last_at
    FROM finalized GROUP BY customer_id
), last AS (
    -- The window sorts as DISTINCT ON does: one sort gives the latest order and the dates
    -- of the ones before it (at_2 ... at_K: LATEST_ORDER_DATES).
    SELECT DISTINCT ON (customer_id) customer_id, id, source, medium, {_leads}
    FROM finalized
    WINDOW latest AS (PARTITION BY customer_id ORDER BY placed_at DESC, id DESC)
    ORDER BY customer_id, placed_at DESC, id DESC
), stats AS (
    SELECT t.customer_id, t.n, t.spent, t.first_at, t.last_at, l.id AS last_id,
           l.source, l.medium, {latest_dates_sql("l")}
    FROM totals t JOIN last l USING (customer_id)
)"""


# --- The client page and the order page ----------------------------------------------------


@dataclass(frozen=True)
class PurchaseSummary:
    """How a customer buys, from the statistics stored on the customer (no query)."""

    orders_count: int
    total_spent: Decimal
    average_cart: Decimal | None
    # Average days between consecutive finalized orders; None below two orders.
    days_between_orders: float | None
    first_order_at: datetime | None
    last_order_at: datetime | None


def customer_purchase_summary(customer) -> PurchaseSummary:
    """The client page's statistics, read from the customer's denormalized fields."""
    count = customer.orders_count
    # Half a cent up, as a till rounds (Decimal's default, half to even, showed 72.48 for
    # 144.97 over two orders).
    average = (customer.total_spent / count).quantize(ZERO, ROUND_HALF_UP) if count else None
    days = None
    if count >= 2 and customer.first_order_at and customer.last_order_at:
        # The gaps between consecutive orders add up to last - first, so their average
        # needs only the stored first and last order dates.
        span = customer.last_order_at - customer.first_order_at
        days = span.total_seconds() / 86400 / (count - 1)
    return PurchaseSummary(
        orders_count=count,
        total_spent=customer.total_spent,
        average_cart=average,
        days_between_orders=days,
        first_order_at=customer.first_order_at,
        last_order_at=customer.last_order_at,
    )


def customer_orders(*, customer_id: int) -> QuerySet[Order]:
    """A customer's orders of every status, newest first, with the history table's columns
    (the push campaign credited with each in the same query)."""
    return (
        Order.objects.filter(customer_id=customer_id)
        .select_related("push_campaign")
        .order_by("-placed_at", "-id")
        .only(
            "id",
            "number",
            "placed_at",
            "status",
            "currency",
            "total",
            "refunded_amount",
            "source",
            "medium",
            "push_campaign__id",
            "push_campaign__title",
        )
    )


class CustomerOrderPages:
    """customer_orders() as the client page's paginator slices it: the first page's rows (a
    slice from the start, of at most FIRST_ROWS) are read with SQL compiled once per process
    for each length (compiling the history's query cost about 0.3 ms of CPU on every client
    page), later pages through the queryset."""

    FIRST_ROWS = 100
    ordered = True  # for Paginator's check

    def __init__(self, *, customer_id: int):
        self.customer_id = customer_id

    def __getitem__(self, key: slice) -> list[Order]:
        start, stop = key.start or 0, key.stop
        if start == 0 and key.step is None and stop is not None and 0 < stop <= self.FIRST_ROWS:
            return _first_orders_query(stop).objects(self.customer_id)
        return list(customer_orders(customer_id=self.customer_id)[key])


@functools.lru_cache(maxsize=128)
def _first_orders_query(rows: int) -> CompiledQuery:
    return CompiledQuery(customer_orders(customer_id=_ANY_CUSTOMER)[:rows], _ANY_CUSTOMER)


def _month_start(moment: datetime, months_back: int = 0) -> datetime:
    year, month = moment.year, moment.month - months_back
    while month < 1:
        year, month = year - 1, month + 12
    return moment.replace(year=year, month=month, day=1, hour=0, minute=0, second=0, microsecond=0)


def customer_monthly_spend(
    *,
    customer_id: int,
    months: int = 12,
    now: datetime | None = None,
    last_order_at: datetime | Literal["unknown"] | None = "unknown",
) -> list[tuple[date, Decimal]]:
    """What a customer spent (finalized orders, net of refunds) in each of the last `months`
    calendar months of the shop's time zone, oldest first, months without orders included.

    One aggregate query, skipped when `last_order_at` (the customer's stored last finalized
    order, None if none) says that no finalized order falls in those months.
    """
    tz = zoneinfo.ZoneInfo(settings.TIME_ZONE)
    local_now = timezone.localtime(now or timezone.now(), tz)
    start = _month_start(local_now, months - 1)
    if last_order_at != "unknown" and (last_order_at is None or last_order_at < start):
        spent = {}
    else:
        rows = _monthly_spend_query(settings.TIME_ZONE).rows(
            customer_id, connection.ops.adapt_datetimefield_value(start)
        )
        spent = {timezone.localtime(month, tz).date(): amount for month, amount in rows}
    result = []
    for back in range(months - 1, -1, -1):
        month = _month_start(local_now, back).date()
        result.append((month, Decimal(spent.get(month) or ZERO).quantize(ZERO)))
    return result


def _monthly_spend(*, customer_id, start, tz) -> QuerySet:
    return (
        Order.objects.filter(
            customer_id=customer_id, status__in=FINALIZED_STATUSES, placed_at__gte=start
        )
        .annotate(month=TruncMonth("placed_at", tzinfo=tz))
        .values("month")
        .annotate(spent=Sum(F("total") - F("refunded_amount")))
        .order_by()
    )


# Values no customer id and no order date take, marking where they go in compiled queries.
_ANY_CUSTOMER = -7_777_777_777_777
_ANY_MOMENT = datetime(1901, 2, 3, 4, 5, 6, 789, tzinfo=UTC)


@functools.cache
def _monthly_spend_query(time_zone: str) -> CompiledQuery:
    """_monthly_spend()'s SQL, compiled once per process and time zone: every client page
    reads the chart's months."""
    queryset = _monthly_spend(
        customer_id=_ANY_CUSTOMER, start=_ANY_MOMENT, tz=zoneinfo.ZoneInfo(time_zone)
    )
    return CompiledQuery(
        queryset, _ANY_CUSTOMER, connection.ops.adapt_datetimefield_value(_ANY_MOMENT)
    )


def rows_converted(fields: list, rows: list[tuple]) -> list[list]:
    """Rows of `fields`' columns read with SQL written once, as the ORM would return them:
    each value through the database's and the field's converters (SQLite returns amounts as
    floats and datetimes as text; PostgreSQL's need none)."""
    converters = []
    for i, field in enumerate(fields):
        column = field.get_col(field.model._meta.db_table)
        found = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
        if found:
            converters.append((i, column, found))
    result = []
    for row in rows:
        values = list(row)
        for i, column, found in converters:
            for converter in found:
                values[i] = converter(values[i], column, connection)
        result.append(values)
    return result


_LINE_SHOWN = [
    OrderLine._meta.get_field(name)
    for name in ("product_name", "sku", "quantity", "unit_price", "line_total")
]
# The ORM's compilation of this query cost more CPU than PostgreSQL's work for it.
_LINES_SHOWN_SQL = (
    f"SELECT {', '.join(f.column for f in _LINE_SHOWN)} FROM {OrderLine._meta.db_table} "
    f"WHERE {OrderLine._meta.get_field('order').column} = %s ORDER BY {OrderLine._meta.pk.column}"
)


def order_lines_shown(*, order_id: int) -> list[dict]:
    """An order's lines as the API shows them (name, SKU, quantity, price, total), in the
    order they were recorded, read with SQL written once."""
    with connection.cursor() as cursor:
        cursor.execute(_LINES_SHOWN_SQL, [order_id])
        rows = cursor.fetchall()
    names = [f.name for f in _LINE_SHOWN]
    return [dict(zip(names, values, strict=True)) for values in rows_converted(_LINE_SHOWN, rows)]


def order_detail() -> QuerySet[Order]:
    """Orders with their customer and lines, as the order page shows them."""
    return Order.objects.select_related("customer", "push_campaign").prefetch_related(
        Prefetch("lines", queryset=OrderLine.objects.order_by("pk"))
    )


def order_page(*, number: str) -> Order | None:
    """order_detail()'s order `number` (None if there is none), with its lines where
    prefetch_related() puts them (order.lines.all() reads no more), read with SQL compiled once
    per process: compiling the order's two joins and its lines cost about 0.5 ms of CPU on
    every order page, more than PostgreSQL's work for them."""
    order_query, lines_query = _order_page_queries()
    found = order_query.objects(number)
    if not found:
        return None
    order = found[0]
    lines = lines_query.objects(order.pk)
    for line in lines:
        line.order = order
    # What prefetch_related() leaves on the order: the manager's queryset, already read.
    cached = order.lines.get_queryset()
    cached._result_cache, cached._prefetch_done = lines, True
    order._prefetched_objects_cache = {"lines": cached}
    return order


# Values no order number and no order id take, marking where they go in the compiled queries.
_ANY_NUMBER = "\x00any order number"
_ANY_ORDER_ID = -7_777_777_777_777


@functools.cache
def _order_page_queries() -> tuple[CompiledQuery, CompiledQuery]:
    orders = order_detail().prefetch_related(None).filter(number=_ANY_NUMBER)
    lines = OrderLine.objects.filter(order_id=_ANY_ORDER_ID).order_by("pk")
    return CompiledQuery(orders, _ANY_NUMBER), CompiledQuery(lines, _ANY_ORDER_ID)
