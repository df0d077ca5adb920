from decimal import Decimal

from django.db import models
from django.urls import reverse
from django.utils.translation import gettext_lazy as _


class OrderStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    PAID = "paid", _("Paid")
    FULFILLED = "fulfilled", _("Fulfilled")
    CANCELLED = "cancelled", _("Cancelled")
    REFUNDED = "refunded", _("Refunded")


# A finalized purchase is an order that was paid; pending and cancelled orders never count.
FINALIZED_STATUSES = (OrderStatus.PAID, OrderStatus.FULFILLED, OrderStatus.REFUNDED)

MONEY = {"max_digits": 12, "decimal_places": 2, "default": Decimal("0.00")}


class Order(models.Model):
    # Unique by a constraint (order_number_unique), not unique=True: that also made a
    # varchar_pattern_ops index on PostgreSQL, for LIKE queries no page makes, which every
    # order's INSERT paid for.
    number = models.CharField(max_length=32)
    # No index of its own: the (customer, -placed_at, -id) index below serves every lookup by
    # customer, and with a second one PostgreSQL may pick it for a big customer's order history
    # and sort thousands of rows instead of reading the first page in order.
    customer = models.ForeignKey(
        "clients.Customer", on_delete=models.PROTECT, related_name="orders", db_index=False
    )
    placed_at = models.DateTimeField()
    status = models.CharField(
        max_length=20, choices=OrderStatus.choices, default=OrderStatus.PENDING
    )
    currency = models.CharField(max_length=3)
    subtotal = models.DecimalField(**MONEY)
    shipping = models.DecimalField(**MONEY)
    tax = models.DecimalField(**MONEY)
    discount = models.DecimalField(**MONEY)
    total = models.DecimalField(**MONEY)
    refunded_amount = models.DecimalField(**MONEY)
    # Where the customer came from when the app was opened for this order (utm_*).
    source = models.CharField(max_length=100, blank=True)
    medium = models.CharField(max_length=100, blank=True)
    campaign = models.CharField(max_length=200, blank=True)
    # The push campaign credited with the order: the one whose notification the customer last
    # clicked at most PUSH_ATTRIBUTION_DAYS before placed_at (notifications/attribution.py).
    # Written once, in the order's INSERT, by the order services; never changed afterwards.
    push_campaign = models.ForeignKey(
        "notifications.Campaign",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    # The addresses as they were when the order was placed (see Address.as_snapshot).
    billing_address = models.JSONField(default=dict)
    shipping_address = models.JSONField(default=dict)

    class Meta:
        indexes = [
            models.Index(fields=["customer", "-placed_at", "-id"]),
            # A campaign's credited orders: their figures (one aggregate that PostgreSQL can
            # read from the index alone) and its latest ones in order (the campaign page).
            # Partial: most orders come from no push, and their INSERT does not touch it.
            models.Index(
                fields=["push_campaign", "-placed_at", "-id", "status", "total", "refunded_amount"],
                condition=models.Q(push_campaign__isnull=False),
                name="order_push_campaign_idx",
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["number"],
                name="order_number_unique",
                violation_error_message=_("An order with this number already exists."),
            )
        ]

    def __str__(self):
        return self.number

    def get_absolute_url(self):
        return reverse("orders:order-detail", args=[self.number])

    @property
    def is_finalized(self) -> bool:
        return self.status in FINALIZED_STATUSES

    @property
    def net_total(self) -> Decimal:
        """What the order brought in: its total less what was refunded."""
        return self.total - self.refunded_amount


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    product_name = models.CharField(max_length=200)
    sku = models.CharField(_("SKU"), max_length=64, blank=True)
    quantity = models.PositiveIntegerField()
    unit_price = models.DecimalField(max_digits=12, decimal_places=2)
    line_total = models.DecimalField(max_digits=12, decimal_places=2)

    def __str__(self):
        return f"{self.quantity} x {self.product_name}"


class Product(models.Model):
    """A product as order lines name it (SKU and name), once: what the lists' "bought a
    product" filter looks up before it reads who bought it (CustomerProduct)."""

    sku = models.CharField(_("SKU"), max_length=64, blank=True)
    name = models.CharField(max_length=200)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["sku", "name"], name="product_once")]

    def __str__(self):
        return f"{self.sku} {self.name}".strip()


class CustomerProduct(models.Model):
    """A product a customer bought in a finalized order.

    Denormalized from the order lines: "customers who bought X" is then a semi-join on the
    (product, customer) index, where reading the lines took seconds at a million customers.
    Written only by the order services (orders/services.py, customer_products_add), in the
    transaction that finalizes the order; a finalized order never stops being one, so rows are
    never removed. `manage.py rebuild_customer_stats` adds what is missing and reports it.
    """

    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="+", db_index=False)
    customer = models.ForeignKey(
        "clients.Customer", on_delete=models.CASCADE, related_name="+", db_index=False
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["product", "customer"], name="customer_product_once")
        ]
        indexes = [models.Index(fields=["customer", "product"], name="customer_product_idx")]

    def __str__(self):
        return f"{self.customer_id}: {self.product_id}"
