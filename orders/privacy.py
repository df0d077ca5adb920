"""Orders keep their amounts, dates and statuses when a customer is erased (the books and the
statistics stay exact); only the address snapshots are personal. Finalized orders keep their
billing snapshot when PRIVACY_KEEP_BILLING_SNAPSHOT says invoices must. The push campaign an
order is credited to (Order.push_campaign) is kept too: once the customer is anonymized it says
nothing about a person, and the campaign's orders and revenue stay exact. The customer's archive
shows it."""

from clients.models import Customer
from orders.models import FINALIZED_STATUSES, CustomerProduct, Order, OrderLine
from privacy.registry import Erasure, register
from privacy.serialize import rows

ORDER_FIELDS = (
    "id",
    "number",
    "placed_at",
    "status",
    "currency",
    "subtotal",
    "shipping",
    "tax",
    "discount",
    "total",
    "refunded_amount",
    "source",
    "medium",
    "campaign",
    "push_campaign",
    "billing_address",
    "shipping_address",
)


def erase(erasure: Erasure) -> None:
    orders = Order.objects.filter(customer__in=erasure.customers)
    if erasure.keep_billing_snapshot:
        orders.update(shipping_address={})
        orders.exclude(status__in=FINALIZED_STATUSES).update(billing_address={})
    else:
        orders.update(shipping_address={}, billing_address={})


def export(customer: Customer) -> dict[str, list[dict]]:
    orders = Order.objects.filter(customer=customer).order_by("placed_at", "pk")
    return {
        "orders": rows(orders, *ORDER_FIELDS),
        "order_lines": rows(
            OrderLine.objects.filter(order__customer=customer).order_by("order_id", "pk"),
            "id",
            "product_name",
            "sku",
            "quantity",
            "unit_price",
            "line_total",
            order_number="order__number",
        ),
    }


# CustomerProduct (which products a customer bought, for the lists' product filter) is derived
# from the finalized orders, which an erasure keeps: it stays, like them, and says nothing more.
register("orders", models=(Order, OrderLine, CustomerProduct), erase=erase, export=export)
