"""Reads of orders, shaped for the pages and commands that use them."""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db.models import Count, F, Max, Min, Sum

from orders.models import FINALIZED_STATUSES, Order

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

    FIELDS = (
        "orders_count",
        "total_spent",
        "first_order_at",
        "last_order_at",
        "last_order_id",
        "last_source",
        "last_medium",
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
    last = finalized.order_by("-placed_at", "-id").values("id", "source", "medium").first()
    return CustomerStats(
        orders_count=agg["count"],
        total_spent=Decimal(agg["spent"] or ZERO).quantize(ZERO),
        first_order_at=agg["first"],
        last_order_at=agg["last"],
        last_order_id=last["id"] if last else None,
        last_source=last["source"] if last else "",
        last_medium=last["medium"] if last else "",
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
    last_orders = {}
    for row in finalized.order_by("customer_id", "placed_at", "id").values_list(
        "customer_id", "id", "source", "medium"
    ):
        last_orders[row[0]] = row[1:]  # ascending order: the last one seen wins
    stats = {}
    for customer_id in customer_ids:
        agg = totals.get(customer_id)
        last_id, source, medium = last_orders.get(customer_id, (None, "", ""))
        stats[customer_id] = CustomerStats(
            orders_count=agg["count"] if agg else 0,
            total_spent=Decimal(agg["spent"] or ZERO).quantize(ZERO) if agg else ZERO,
            first_order_at=agg["first"] if agg else None,
            last_order_at=agg["last"] if agg else None,
            last_order_id=last_id,
            last_source=source,
            last_medium=medium,
        )
    return stats
