"""Every change to orders goes through here, and keeps the customer's statistics exact."""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from clients.models import Customer
from orders.models import Order, OrderLine, OrderStatus
from orders.selectors import ZERO, CustomerStats, customer_stats_compute

# Which status may follow which; anything else is refused.
_TRANSITIONS = {
    OrderStatus.PENDING: {OrderStatus.PAID, OrderStatus.CANCELLED},
    OrderStatus.PAID: {OrderStatus.FULFILLED, OrderStatus.REFUNDED},
    OrderStatus.FULFILLED: {OrderStatus.REFUNDED},
    OrderStatus.CANCELLED: set(),
    OrderStatus.REFUNDED: set(),
}


@dataclass(frozen=True)
class LineInput:
    product_name: str
    sku: str
    quantity: int
    unit_price: Decimal


def _customer_lock(customer_id: int) -> Customer:
    # Every order change for a customer locks the customer row first, so concurrent
    # changes are serialized and each recomputation sees the previous one's orders.
    return Customer.objects.select_for_update().get(pk=customer_id)


def _customer_stats_store(customer: Customer) -> None:
    stats = customer_stats_compute(customer_id=customer.pk)
    changed = [f for f in CustomerStats.FIELDS if getattr(customer, f) != getattr(stats, f)]
    # A change that leaves the statistics as they were (fulfilling a paid order, cancelling a
    # pending one) does not rewrite the row: a rewritten row takes its page out of the
    # visibility map until the next VACUUM, and the lists' deep pages then visit the table
    # for every customer on it (clients/migrations/0008_customer_autovacuum.py).
    if not changed:
        return
    for field in changed:
        setattr(customer, field, getattr(stats, field))
    customer.save(update_fields=changed)


@transaction.atomic
def order_place(
    *,
    customer: Customer,
    number: str,
    lines: list[LineInput],
    shipping: Decimal = ZERO,
    tax: Decimal = ZERO,
    discount: Decimal = ZERO,
    currency: str | None = None,
    source: str = "",
    medium: str = "",
    campaign: str = "",
    placed_at: datetime | None = None,
) -> Order:
    """Record a new (pending) order, freezing the customer's default addresses on it."""
    if not lines:
        raise ValidationError("An order needs at least one line.")
    customer = _customer_lock(customer.pk)
    subtotal = sum((line.unit_price * line.quantity for line in lines), ZERO)
    billing = customer.default_billing_address
    shipping_address = customer.default_shipping_address
    order = Order.objects.create(
        number=number,
        customer=customer,
        placed_at=placed_at or timezone.now(),
        status=OrderStatus.PENDING,
        currency=currency or settings.SHOP_CURRENCY,
        subtotal=subtotal,
        shipping=shipping,
        tax=tax,
        discount=discount,
        total=subtotal + shipping + tax - discount,
        source=source,
        medium=medium,
        campaign=campaign,
        billing_address=billing.as_snapshot() if billing else {},
        shipping_address=shipping_address.as_snapshot() if shipping_address else {},
    )
    OrderLine.objects.bulk_create(
        OrderLine(
            order=order,
            product_name=line.product_name,
            sku=line.sku,
            quantity=line.quantity,
            unit_price=line.unit_price,
            line_total=line.unit_price * line.quantity,
        )
        for line in lines
    )
    return order


@transaction.atomic
def order_set_status(*, order: Order, status: str) -> Order:
    """Move an order to `status` (pay, fulfil, cancel) and update the customer's statistics."""
    customer = _customer_lock(order.customer_id)
    order = Order.objects.select_for_update().get(pk=order.pk)
    if status not in _TRANSITIONS[order.status]:
        raise ValidationError(f"An order that is {order.status} cannot become {status}.")
    order.status = status
    order.save(update_fields=["status"])
    _customer_stats_store(customer)
    return order


@transaction.atomic
def order_refund(*, order: Order, amount: Decimal) -> Order:
    """Refund part or all of a paid order; a full refund marks it refunded."""
    customer = _customer_lock(order.customer_id)
    order = Order.objects.select_for_update().get(pk=order.pk)
    if order.status not in (OrderStatus.PAID, OrderStatus.FULFILLED):
        raise ValidationError(f"An order that is {order.status} cannot be refunded.")
    if amount <= ZERO or order.refunded_amount + amount > order.total:
        raise ValidationError("The refund must be positive and at most what is left to refund.")
    order.refunded_amount += amount
    if order.refunded_amount == order.total:
        order.status = OrderStatus.REFUNDED
    order.save(update_fields=["refunded_amount", "status"])
    _customer_stats_store(customer)
    return order
