"""Every change to orders goes through here, and keeps the customer's statistics exact.

The customer's statistics (orders_count, total_spent, first/last finalized order, last
source and medium: see clients.models.Customer) change only when an order becomes finalized
(paid) or is refunded. Those two services update them in one UPDATE statement that adjusts the
stored values from the order's own figures: the statement takes the customer's row lock and
PostgreSQL re-evaluates it on the newest committed row, so concurrent changes for one customer
are serialized and each one adds to the previous one's result. This costs no read of the
customer's other orders (a customer with 5,000 orders costs what a customer with one does),
and changes that cannot move the statistics (placing a pending order, fulfilling, cancelling a
pending order) do not write the customer's row at all: every write of that row rewrites its
entries in the customers table's list indexes (the Clients and Leads sorts, the search index),
the most expensive part of an order's write path on a large shop.

Locks are always taken in the same order, the order's row first and then the customer's, so
two calls cannot deadlock. `manage.py rebuild_customer_stats` recomputes the statistics from
the orders and reports any drift.

Every refusal raises an OrderError (a ValidationError) whose `code` and `field` say what was
wrong, before anything is written: a refused call changes nothing.
"""

import json
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from itertools import pairwise

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.db import connection, transaction
from django.db.models import JSONField
from django.utils import timezone

from clients.models import (
    ADDRESS_FIELDS,
    LATEST_ORDER_DATES,
    Address,
    AuditAction,
    AuditEntry,
    AuditOrigin,
    Customer,
)
from lifecycle.rules import group_sql
from lifecycle.services import customers_group_refresh
from notifications.attribution import campaign_credited, campaigns_credited
from orders.models import (
    FINALIZED_STATUSES,
    MONEY,
    CustomerProduct,
    Order,
    OrderLine,
    OrderStatus,
    Product,
)
from orders.selectors import (
    ZERO,
    CustomerStats,
    customer_stats_for,
    rows_converted,
)

# Which status may follow which; anything else is refused. A full refund (order_refund) is
# the only way to REFUNDED.
_TRANSITIONS = {
    OrderStatus.PENDING: {OrderStatus.PAID, OrderStatus.CANCELLED},
    OrderStatus.PAID: {OrderStatus.FULFILLED},
    OrderStatus.FULFILLED: set(),
    OrderStatus.CANCELLED: set(),
    OrderStatus.REFUNDED: set(),
}
# The one status each status change starts from (paid and cancelled from pending, fulfilled
# from paid): a change is then one UPDATE of the order in that status.
_PREVIOUS = {new: old for old, news in _TRANSITIONS.items() for new in news}
REFUNDABLE_STATUSES = (OrderStatus.PAID, OrderStatus.FULFILLED)

# The largest amount a money column holds (12 digits, 2 after the point).
MAX_AMOUNT = Decimal(10 ** (MONEY["max_digits"] - MONEY["decimal_places"])) - Decimal("0.01")
MAX_LINES = 500
# A shop's clock may run a little ahead of ours; an order placed further in the future is a
# mistake (it would stay the customer's "last order" until that date).
FUTURE_TOLERANCE = timedelta(hours=1)
# No shop sold online before this: an order "placed" in the year 1 is a mistake, and the
# attribution windows before it (placed_at - 30 days) are no dates (it was a 500).
EARLIEST_PLACED_AT = datetime(1990, 1, 1, tzinfo=UTC)


class OrderError(ValidationError):
    """A refused order change: nothing was written.

    `code` is stable (the API's problem type), `field` names the input at fault (or "").
    `conflict` is True when the request is valid but the order's current state forbids it
    (the API answers 409), False when the request itself is invalid (422).
    """

    conflict = False

    def __init__(self, message: str, *, code: str, field: str = ""):
        super().__init__(message, code=code)
        self.field = field


class OrderInvalid(OrderError):
    """The request itself is wrong (no lines, a negative amount, another currency...)."""


class OrderConflict(OrderError):
    """The order's current state forbids the change (paying a cancelled order, refunding
    more than was paid, an order number already used)."""

    conflict = True


@dataclass(frozen=True)
class LineInput:
    product_name: str
    sku: str
    quantity: int
    unit_price: Decimal


@dataclass(frozen=True)
class Attribution:
    """Where the customer came from for an order (UTM source, medium, campaign)."""

    source: str = ""
    medium: str = ""
    campaign: str = ""


# Finds the attributions of orders placed without one: each customer's latest app launch or
# visit before the order (registered by the storefront app, which owns launches). Given
# (customer id, placed_at) pairs, answers one Attribution or None per pair, in their order:
# the bulk import asks for a whole batch at once, in one query rather than one per order.
AttributionFinder = Callable[[list[tuple[int, datetime]]], list[Attribution | None]]
_attribution_finders: list[AttributionFinder] = []


def attribution_finder_register(finder: AttributionFinder) -> None:
    """Let an app that records launches attribute orders placed without a source."""
    if finder not in _attribution_finders:
        _attribution_finders.append(finder)


def _attributions_for(orders: list[tuple[int, datetime]]) -> list[Attribution]:
    found: list[Attribution | None] = [None] * len(orders)
    for finder in _attribution_finders:
        missing = [i for i, attribution in enumerate(found) if attribution is None]
        if not missing:
            break
        for i, attribution in zip(missing, finder([orders[i] for i in missing]), strict=True):
            found[i] = attribution
    return [attribution or Attribution() for attribution in found]


# --- Audit trail -------------------------------------------------------------------------

# Who an order change is shown as made by in the client page's change history: the customer
# places and pays; the shop fulfils, cancels and refunds.
_ORIGINS = {
    AuditAction.ORDER_PLACE: AuditOrigin.CUSTOMER,
    AuditAction.ORDER_PAY: AuditOrigin.CUSTOMER,
}


def _audit_values(order: Order, action: AuditAction, changes: dict, at=None, actor=None) -> dict:
    """The audit entry of an order change, by column (attname): made by `actor` (staff in the
    back office) when there is one, else by whoever _ORIGINS says."""
    return {
        "customer_id": order.customer_id,
        "actor_id": actor.pk if actor is not None else None,
        "at": at or timezone.now(),
        "action": action,
        "origin": AuditOrigin.STAFF
        if actor is not None
        else _ORIGINS.get(action, AuditOrigin.SHOP),
        "changes": {"order": order.number, **changes},
    }


def _audit_entry(
    order: Order, action: AuditAction, changes: dict, at=None, actor=None
) -> AuditEntry:
    return AuditEntry(**_audit_values(order, action, changes, at, actor))


_AUDIT_FIELDS = [f for f in AuditEntry._meta.concrete_fields if not f.primary_key]
# Model.save()'s INSERT, written once (the ORM's save machinery cost a tenth of an order
# call's CPU for it); no signal listens to AuditEntry.
_AUDIT_SQL = (
    f"INSERT INTO {AuditEntry._meta.db_table} ({', '.join(f.column for f in _AUDIT_FIELDS)}) "
    f"VALUES ({', '.join(['%s'] * len(_AUDIT_FIELDS))})"
)


_AUDIT_ATTNAMES = [f.attname for f in _AUDIT_FIELDS]


def _audit_row(order: Order, changes: dict, at, actor=None) -> list:
    """The import's audit entry of an order as COPY takes it, in _AUDIT_FIELDS' order (the
    enum members and the changes as their stored text)."""
    values = _audit_values(order, AuditAction.ORDER_IMPORT, changes, at, actor)
    values["action"] = values["action"].value
    values["origin"] = values["origin"].value
    values["changes"] = json.dumps(values["changes"])
    return [values[name] for name in _AUDIT_ATTNAMES]


def _audit(order: Order, action: AuditAction, changes: dict) -> None:
    """The audit entry of one order change, on its customer (one INSERT, without building
    the model: its __init__ and signals cost more than the statement's values)."""
    row = _audit_values(order, action, changes)
    values = [f.get_db_prep_save(row[f.attname], connection) for f in _AUDIT_FIELDS]
    with connection.cursor() as cursor:
        cursor.execute(_AUDIT_SQL, values)


# --- Validation ----------------------------------------------------------------------------


def _amount(value, field: str, *, allow_zero: bool = True) -> Decimal:
    try:
        amount = Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        raise OrderInvalid(
            f"{field} is not an amount.", code="invalid-amount", field=field
        ) from None
    if not amount.is_finite() or amount != amount.quantize(ZERO):
        raise OrderInvalid(
            f"{field} must be an amount with at most 2 decimals.",
            code="invalid-amount",
            field=field,
        )
    if amount < ZERO or (amount == ZERO and not allow_zero):
        raise OrderInvalid(
            f"{field} must be {'zero or ' if allow_zero else ''}positive.",
            code="invalid-amount",
            field=field,
        )
    if amount > MAX_AMOUNT:
        raise OrderInvalid(f"{field} is too large.", code="invalid-amount", field=field)
    return amount.quantize(ZERO)


def _text(value: str, field: str, max_length: int, *, required: bool = False) -> str:
    value = (value or "").strip()
    if required and not value:
        raise OrderInvalid(f"{field} is required.", code="required", field=field)
    if len(value) > max_length:
        raise OrderInvalid(
            f"{field} is longer than {max_length} characters.", code="too-long", field=field
        )
    if "\x00" in value:
        raise OrderInvalid(f"{field} contains a NUL character.", code="invalid-text", field=field)
    return value


@dataclass(frozen=True)
class OrderDraft:
    """An order checked and computed, ready to be written (see order_draft)."""

    number: str
    currency: str
    placed_at: datetime
    lines: tuple[LineInput, ...]
    subtotal: Decimal
    shipping: Decimal
    tax: Decimal
    discount: Decimal
    total: Decimal
    # None: attribute it to the customer's last launch before placed_at.
    attribution: Attribution | None

    def line_values(self) -> list[dict]:
        """The lines as stored and shown: name, SKU, quantity, unit price, line total."""
        return [
            {
                "product_name": line.product_name,
                "sku": line.sku,
                "quantity": line.quantity,
                "unit_price": line.unit_price,
                "line_total": line.unit_price * line.quantity,
            }
            for line in self.lines
        ]

    def line_rows(self, order: Order) -> list[OrderLine]:
        return [
            OrderLine(
                order=order,
                product_name=line.product_name,
                sku=line.sku,
                quantity=line.quantity,
                unit_price=line.unit_price,
                line_total=line.unit_price * line.quantity,
            )
            for line in self.lines
        ]


def order_draft(
    *,
    number: str,
    lines: list[LineInput],
    shipping=ZERO,
    tax=ZERO,
    discount=ZERO,
    total=None,
    currency: str | None = None,
    source: str | None = None,
    medium: str | None = None,
    campaign: str | None = None,
    placed_at: datetime | None = None,
    now: datetime | None = None,
) -> OrderDraft:
    """Check an order as the shop sends it and compute its amounts (no query).

    `total`, when given, must equal subtotal + shipping + tax - discount. Raises OrderInvalid.
    """
    number = _text(number, "number", Order._meta.get_field("number").max_length, required=True)
    shop_currency = settings.SHOP_CURRENCY
    currency = (currency or shop_currency).strip().upper()
    if currency != shop_currency:
        # Statistics add amounts up: they hold in one currency, the shop's.
        raise OrderInvalid(
            f"The shop's currency is {shop_currency}; this order is in {currency}.",
            code="currency-mismatch",
            field="currency",
        )
    if not lines:
        raise OrderInvalid("An order needs at least one line.", code="no-lines", field="lines")
    if len(lines) > MAX_LINES:
        raise OrderInvalid(
            f"An order has at most {MAX_LINES} lines.", code="too-many-lines", field="lines"
        )
    checked = []
    subtotal = ZERO
    for i, line in enumerate(lines):
        where = f"lines[{i}]"
        quantity = line.quantity
        if (
            isinstance(quantity, bool)
            or not isinstance(quantity, int)
            or not 1 <= quantity <= 10**6
        ):
            raise OrderInvalid(
                "quantity must be a whole number from 1 to 1,000,000.",
                code="invalid-quantity",
                field=f"{where}.quantity",
            )
        price = _amount(line.unit_price, f"{where}.unit_price")
        checked.append(
            LineInput(
                product_name=_text(line.product_name, f"{where}.product_name", 200, required=True),
                sku=_text(line.sku, f"{where}.sku", 64),
                quantity=quantity,
                unit_price=price,
            )
        )
        subtotal += price * quantity
        if subtotal > MAX_AMOUNT:
            raise OrderInvalid(
                "The order's amount is too large.", code="invalid-amount", field=where
            )
    shipping = _amount(shipping, "shipping")
    tax = _amount(tax, "tax")
    discount = _amount(discount, "discount")
    computed = subtotal + shipping + tax - discount
    if computed < ZERO:
        raise OrderInvalid(
            "The discount is larger than the order's amount.",
            code="invalid-amount",
            field="discount",
        )
    if computed > MAX_AMOUNT:
        raise OrderInvalid("The order's amount is too large.", code="invalid-amount", field="total")
    if total is not None and _amount(total, "total") != computed:
        raise OrderInvalid(
            f"total is {total} but the lines, shipping, tax and discount make {computed}.",
            code="total-mismatch",
            field="total",
        )
    now = now or timezone.now()
    placed_at = placed_at or now
    if timezone.is_naive(placed_at):
        raise OrderInvalid(
            "placed_at needs a time zone offset.", code="invalid-datetime", field="placed_at"
        )
    if placed_at > now + FUTURE_TOLERANCE:
        raise OrderInvalid(
            "placed_at is in the future.", code="invalid-datetime", field="placed_at"
        )
    if placed_at < EARLIEST_PLACED_AT:
        raise OrderInvalid("placed_at is before 1990.", code="invalid-datetime", field="placed_at")
    if source is None and medium is None and campaign is None:
        attribution = None
    else:
        attribution = Attribution(
            source=_text(source, "source", 100),
            medium=_text(medium, "medium", 100),
            campaign=_text(campaign, "campaign", 200),
        )
    return OrderDraft(
        number=number,
        currency=currency,
        placed_at=placed_at,
        lines=tuple(checked),
        subtotal=subtotal,
        shipping=shipping,
        tax=tax,
        discount=discount,
        total=computed,
        attribution=attribution,
    )


_CUSTOMERS = Customer._meta.db_table
_ADDRESSES = Address._meta.db_table
_ADDRESS_COLUMNS = ", ".join(
    f"{kind}.{Address._meta.get_field(name).column}" for kind in "bs" for name in ADDRESS_FIELDS
)
# The customer's default addresses in one query, written once (the ORM's compilation of the
# select_related cost more CPU than the rest of the order's creation). b.id and s.id say
# whether the customer has each.
_SNAPSHOTS_SQL = f"""
SELECT b.id, s.id, {_ADDRESS_COLUMNS} FROM {_CUSTOMERS} c
LEFT JOIN {_ADDRESSES} b ON b.id = c.default_billing_address_id
LEFT JOIN {_ADDRESSES} s ON s.id = c.default_shipping_address_id
WHERE c.id = %s AND c.erased_at IS NULL
"""


def _address_snapshots(customer_id: int) -> tuple[dict, dict]:
    """The customer's current default billing and shipping addresses, as orders keep them
    (Address.as_snapshot), read from the database in one query (the caller's copy of the
    customer may be stale)."""
    with connection.cursor() as cursor:
        cursor.execute(_SNAPSHOTS_SQL, [customer_id])
        row = cursor.fetchone()
    # An erased customer (privacy/) places no more orders: it is no longer anyone.
    if row is None:
        raise Customer.DoesNotExist(f"No customer {customer_id}.")
    n = len(ADDRESS_FIELDS)
    billing = dict(zip(ADDRESS_FIELDS, row[2 : 2 + n], strict=True)) if row[0] else {}
    shipping = dict(zip(ADDRESS_FIELDS, row[2 + n :], strict=True)) if row[1] else {}
    return billing, shipping


def order_build(
    *,
    customer_id: int,
    draft: OrderDraft,
    billing: dict,
    shipping: dict,
    push_campaign_id: int | None = None,
    attribution: Attribution | None = None,
) -> Order:
    """The unsaved pending order of a draft (also used by the bulk import), credited to
    `push_campaign_id` (notifications.attribution decides which). A draft without an
    attribution takes `attribution`, found by the caller, or else looks for one."""
    if draft.attribution is not None:
        attribution = draft.attribution
    elif attribution is None:
        attribution = _attributions_for([(customer_id, draft.placed_at)])[0]
    return Order(
        number=draft.number,
        customer_id=customer_id,
        placed_at=draft.placed_at,
        status=OrderStatus.PENDING,
        currency=draft.currency,
        subtotal=draft.subtotal,
        shipping=draft.shipping,
        tax=draft.tax,
        discount=draft.discount,
        total=draft.total,
        source=attribution.source,
        medium=attribution.medium,
        campaign=attribution.campaign,
        billing_address=billing,
        shipping_address=shipping,
        push_campaign_id=push_campaign_id,
    )


def order_number_taken(number: str) -> OrderConflict:
    return OrderConflict(
        f"The order number {number} is already used.", code="order-number-taken", field="number"
    )


_ORDERS = Order._meta.db_table
_ORDER_FIELDS = [f for f in Order._meta.concrete_fields if not f.primary_key]
# Model.save()'s INSERT, written once, that answers "number already used" by inserting
# nothing instead of an IntegrityError (which would need a savepoint to recover from).
_ORDER_INSERT_SQL = (
    f"INSERT INTO {_ORDERS} ({', '.join(f.column for f in _ORDER_FIELDS)}) "
    f"VALUES ({', '.join(['%s'] * len(_ORDER_FIELDS))}) "
    f"ON CONFLICT ({Order._meta.get_field('number').column}) DO NOTHING RETURNING id"
)


def _order_insert(order: Order) -> bool:
    """Insert a new order (setting its id); False if its number is already used."""
    values = [f.get_db_prep_save(f.pre_save(order, True), connection) for f in _ORDER_FIELDS]
    with connection.cursor() as cursor:
        cursor.execute(_ORDER_INSERT_SQL, values)
        row = cursor.fetchone()
    if row is None:
        return False
    order.pk = row[0]
    order._state.adding = False
    order._state.db = connection.alias
    return True


_LINES = OrderLine._meta.db_table
_LINE_FIELDS = [f for f in OrderLine._meta.concrete_fields if not f.primary_key]
_LINE_ROW = f"({', '.join(['%s'] * len(_LINE_FIELDS))})"
_LINES_INSERT_SQL = f"INSERT INTO {_LINES} ({', '.join(f.column for f in _LINE_FIELDS)}) VALUES "


def _lines_insert(order: Order, lines: list[dict]) -> None:
    """Insert a new order's lines (OrderDraft.line_values) in one statement written here (the
    ORM's bulk_create cost a tenth of an order creation's CPU to compile it)."""
    values = []
    for line in lines:
        row = {"order_id": order.pk, **line}
        values += [f.get_db_prep_save(row[f.attname], connection) for f in _LINE_FIELDS]
    with connection.cursor() as cursor:
        cursor.execute(_LINES_INSERT_SQL + ", ".join([_LINE_ROW] * len(lines)), values)


@contextmanager
def _order_change():
    """The transaction of one order change, without a savepoint of its own: inside a
    caller's transaction (every API call is one), a savepoint would cost two statements for
    nothing, since every refusal (OrderError, a DoesNotExist) is raised before anything is
    written. A refusal leaves the caller's transaction usable; any other error (a database
    error after a write) marks it for rollback, as it must."""
    refusal = None
    with transaction.atomic(savepoint=False):
        try:
            yield
        except (OrderError, ObjectDoesNotExist) as error:
            refusal = error
    if refusal is not None:
        raise refusal


def order_create(*, customer: Customer, draft: OrderDraft) -> Order:
    """Record a new pending order from a checked draft, freezing the customer's default
    addresses on it. A pending order does not count in the statistics: the customer's row is
    read, not written. Raises OrderConflict if the number is already used (the unique index
    says so: no query to look first)."""
    with _order_change():
        billing, shipping = _address_snapshots(customer.pk)
        order = order_build(
            customer_id=customer.pk,
            draft=draft,
            billing=billing,
            shipping=shipping,
            push_campaign_id=campaign_credited(customer_id=customer.pk, placed_at=draft.placed_at),
        )
        order.customer = customer
        if not _order_insert(order):
            raise order_number_taken(draft.number)
        _lines_insert(order, draft.line_values())
        _audit(order, AuditAction.ORDER_PLACE, {"total": str(order.total)})
    return order


def order_place(
    *,
    customer: Customer,
    number: str,
    lines: list[LineInput],
    shipping: Decimal = ZERO,
    tax: Decimal = ZERO,
    discount: Decimal = ZERO,
    total: Decimal | None = None,
    currency: str | None = None,
    source: str | None = None,
    medium: str | None = None,
    campaign: str | None = None,
    placed_at: datetime | None = None,
) -> Order:
    """Check and record a new (pending) order. Without source, medium and campaign, the
    customer's last launch before `placed_at` attributes it."""
    draft = order_draft(
        number=number,
        lines=lines,
        shipping=shipping,
        tax=tax,
        discount=discount,
        total=total,
        currency=currency,
        source=source,
        medium=medium,
        campaign=campaign,
        placed_at=placed_at,
    )
    return order_create(customer=customer, draft=draft)


# --- Statistics ----------------------------------------------------------------------------


# The statistics an order change adjusts (see CustomerStats; first_order_at never moves later).
_STATS_FIELDS = CustomerStats.FIELDS


# The customer's lifecycle group follows its statistics in the same statement (one write of
# the row, not two): the group's CASE over the statistics as the statement leaves them.
_VENDOR = connection.vendor
_LATER = (
    "CASE WHEN last_order_at IS NULL OR last_order_at < %(at)s THEN %(at)s ELSE last_order_at END"
)
_GROUP_AFTER_ADD = group_sql(
    _VENDOR, n="orders_count + 1", spent="total_spent + %(net)s", last=_LATER
)
# The order is newer than the customer's stored last finalized order: by placed_at, then id,
# as customer_stats_compute sorts them.
_NEWER = (
    "(last_order_at IS NULL OR last_order_at < %(at)s"
    " OR (last_order_at = %(at)s AND COALESCE(last_order_id, 0) < %(order)s))"
)
# The dates of the latest finalized orders (LATEST_ORDER_DATES) once the order's date is
# among them, a missing date being older than any: the order takes the place of the first
# date older than its own and pushes the older ones down one. Each column's new value is the
# one before it if that one is not newer than the order, else the order's date if the column
# is older, else the column unchanged.
_DATES_AFTER_ADD = ",\n    ".join(
    f"{column} = CASE WHEN {newer} IS NULL OR {newer} <= %(at)s THEN {newer}"
    f" WHEN {column} IS NULL OR {column} < %(at)s THEN %(at)s ELSE {column} END"
    for newer, column in pairwise(LATEST_ORDER_DATES)
)
# One statement: it takes the customer's row lock, and PostgreSQL evaluates it on the newest
# committed row version, so concurrent adjustments for one customer add up. Every SET
# expression reads the row as it was before the statement (SQL semantics, SQLite included).
_ADD_FINALIZED_SQL = f"""
UPDATE {_CUSTOMERS} SET
    orders_count = orders_count + 1,
    total_spent = total_spent + %(net)s,
    first_order_at = CASE WHEN first_order_at IS NULL OR first_order_at > %(at)s
                          THEN %(at)s ELSE first_order_at END,
    last_order_at = CASE WHEN {_NEWER} THEN %(at)s ELSE last_order_at END,
    last_order_id = CASE WHEN {_NEWER} THEN %(order)s ELSE last_order_id END,
    {_DATES_AFTER_ADD},
    last_source = CASE WHEN {_NEWER} THEN %(source)s ELSE last_source END,
    last_medium = CASE WHEN {_NEWER} THEN %(medium)s ELSE last_medium END,
    lifecycle_group = {_GROUP_AFTER_ADD}
WHERE id = %(customer)s
"""
_GROUP_AFTER_REFUND = group_sql(
    _VENDOR, n="orders_count", spent="total_spent - %(amount)s", last="last_order_at"
)
_SUBTRACT_SQL = (
    f"UPDATE {_CUSTOMERS} SET total_spent = total_spent - %(amount)s, "
    f"lifecycle_group = {_GROUP_AFTER_REFUND} WHERE id = %(customer)s"
)


def _stats_add_finalized(order: Order) -> None:
    """Count a newly finalized order in its customer's statistics (one UPDATE, written in SQL:
    the ORM's expressions for it cost more CPU than the rest of the call)."""
    ops = connection.ops
    with connection.cursor() as cursor:
        cursor.execute(
            _ADD_FINALIZED_SQL,
            {
                "net": ops.adapt_decimalfield_value(order.total - order.refunded_amount, 14, 2),
                "at": ops.adapt_datetimefield_value(order.placed_at),
                "order": order.pk,
                "source": order.source,
                "medium": order.medium,
                "customer": order.customer_id,
            },
        )
    customer_products_add(where="o.id = %s", params=[order.pk])


_LINES_OF = f"FROM {OrderLine._meta.db_table} l JOIN {Order._meta.db_table} o ON o.id = l.order_id "


def customer_products_add(*, where: str, params: list) -> int:
    """Record the products of the orders `where` selects (an SQL condition on `o`, the
    orders, and `l`, their lines) as bought by their customers: CustomerProduct, the lists'
    "bought a product" filter. Only finalized orders may be selected. Returns the rows added."""
    products = Product._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {products} (sku, name) SELECT DISTINCT l.sku, l.product_name "
            f"{_LINES_OF}WHERE {where} ON CONFLICT DO NOTHING",
            params,
        )
        cursor.execute(
            f"INSERT INTO {CustomerProduct._meta.db_table} (product_id, customer_id) "
            f"SELECT DISTINCT p.id, o.customer_id {_LINES_OF}"
            f"JOIN {products} p ON p.sku = l.sku AND p.name = l.product_name "
            f"WHERE {where} ON CONFLICT DO NOTHING",
            params,
        )
        return cursor.rowcount


def finalized_where() -> tuple[str, list]:
    """SQL (on `o`, the orders) selecting finalized orders, and its parameters."""
    return (
        "o.status IN (" + ", ".join(["%s"] * len(FINALIZED_STATUSES)) + ")",
        [str(s) for s in FINALIZED_STATUSES],
    )


def customer_products_rebuild() -> int:
    """Add every product bought in a finalized order that CustomerProduct misses; returns
    how many rows were missing (0 when it was exact)."""
    where, params = finalized_where()
    return max(customer_products_add(where=where, params=params), 0)


def _stats_subtract_refund(order: Order, amount: Decimal) -> None:
    """Take a refund off its (finalized) order's customer's total spent (one UPDATE)."""
    with connection.cursor() as cursor:
        cursor.execute(
            _SUBTRACT_SQL,
            {
                "amount": connection.ops.adapt_decimalfield_value(amount, 14, 2),
                "customer": order.customer_id,
            },
        )


# --- Status changes and refunds ------------------------------------------------------------


def _order_lock(order: Order) -> Order:
    """The order, locked, found by id or else by number (Order.DoesNotExist if none). Every
    column but the address snapshots, so that the caller can show the changed order."""
    found = Order.objects.select_for_update(no_key=True).defer(
        "billing_address", "shipping_address"
    )
    if order.pk is not None:
        return found.get(pk=order.pk)
    return found.get(number=order.number)


def _refuse_transition(order: Order, status: str) -> OrderConflict:
    return OrderConflict(
        f"An order that is {order.status} cannot become {status}.",
        code="invalid-transition",
        field="status",
    )


# Every column but the address snapshots: what a caller shows of a changed order.
_SHOWN_FIELDS = [
    f for f in Order._meta.concrete_fields if f.name not in ("billing_address", "shipping_address")
]
# The change of status, written once: it takes the order's row lock and checks the status it
# leaves in one statement (a concurrent change of the same order makes it find none).
_TRANSITION_SQL = {
    by: f"UPDATE {_ORDERS} SET status = %s WHERE {Order._meta.get_field(by).column} = %s "
    f"AND status = %s RETURNING {', '.join(f.column for f in _SHOWN_FIELDS)}"
    for by in ("id", "number")
}


def _order_transition(order: Order, status: str) -> Order | None:
    """The order (found by id, else by number) moved from _PREVIOUS[status] to `status`,
    locked; None if it has another status or does not exist."""
    previous = _PREVIOUS.get(status)
    if previous is None:
        return None
    by, key = ("id", order.pk) if order.pk is not None else ("number", order.number)
    with connection.cursor() as cursor:
        cursor.execute(_TRANSITION_SQL[by], [str(status), key, str(previous)])
        row = cursor.fetchone()
    if row is None:
        return None
    (values,) = rows_converted(_SHOWN_FIELDS, [row])
    return Order.from_db(connection.alias, [f.attname for f in _SHOWN_FIELDS], values)


def order_set_status(*, order: Order, status: str) -> Order:
    """Move an order to `status` (pay, fulfil, cancel) and update the customer's statistics."""
    if status not in OrderStatus.values:
        raise OrderInvalid(
            f"{status} is not an order status.", code="invalid-status", field="status"
        )
    with _order_change():
        changed = _order_transition(order, status)
        if changed is None:
            # Refused (or no such order: Order.DoesNotExist), nothing written.
            raise _refuse_transition(_order_lock(order), status)
        before = _PREVIOUS[status]
        if status in FINALIZED_STATUSES and before not in FINALIZED_STATUSES:
            _stats_add_finalized(changed)
        _audit(changed, _STATUS_ACTIONS[status], {"status": [before, status]})
    return changed


_STATUS_ACTIONS = {
    OrderStatus.PAID: AuditAction.ORDER_PAY,
    OrderStatus.FULFILLED: AuditAction.ORDER_FULFIL,
    OrderStatus.CANCELLED: AuditAction.ORDER_CANCEL,
}


def order_pay(*, order: Order) -> Order:
    """A pending order was paid: it becomes a finalized purchase."""
    return order_set_status(order=order, status=OrderStatus.PAID)


def order_fulfil(*, order: Order) -> Order:
    """A paid order was shipped or handed over."""
    return order_set_status(order=order, status=OrderStatus.FULFILLED)


def order_cancel(*, order: Order) -> Order:
    """A pending order was abandoned or cancelled before payment."""
    return order_set_status(order=order, status=OrderStatus.CANCELLED)


@transaction.atomic
def order_refund(*, order: Order, amount) -> Order:
    """Refund part or all of a paid order; the refund that brings the refunded amount to the
    total marks it refunded. Several partial refunds add up."""
    amount = _amount(amount, "amount", allow_zero=False)
    order = _order_lock(order)
    if order.status not in REFUNDABLE_STATUSES:
        raise OrderConflict(
            f"An order that is {order.status} cannot be refunded.",
            code="invalid-transition",
            field="status",
        )
    left = order.total - order.refunded_amount
    if amount > left:
        raise OrderConflict(
            f"The refund of {amount} is more than the {left} left to refund on this order.",
            code="refund-exceeds-paid",
            field="amount",
        )
    before = (order.status, order.refunded_amount)
    order.refunded_amount += amount
    if order.refunded_amount == order.total:
        order.status = OrderStatus.REFUNDED
    order.save(update_fields=["refunded_amount", "status"])
    _stats_subtract_refund(order, amount)
    changes = {"refunded_amount": [str(before[1]), str(order.refunded_amount)]}
    if order.status != before[0]:
        changes["status"] = [before[0], order.status]
    _audit(order, AuditAction.ORDER_REFUND, changes)
    return order


# --- Bulk import (a shop's history) --------------------------------------------------------

# Which (status, refunded) an imported order may move to from the one stored: only forward,
# as the calls above would have moved it.
_REACHABLE = {
    OrderStatus.PENDING: {s for s in OrderStatus.values},
    OrderStatus.PAID: {OrderStatus.PAID, OrderStatus.FULFILLED, OrderStatus.REFUNDED},
    OrderStatus.FULFILLED: {OrderStatus.FULFILLED, OrderStatus.REFUNDED},
    OrderStatus.CANCELLED: {OrderStatus.CANCELLED},
    OrderStatus.REFUNDED: {OrderStatus.REFUNDED},
}


@dataclass(frozen=True)
class ImportedOrder:
    """One order of an import: its draft, its customer, and where its life has got to."""

    draft: OrderDraft
    customer_id: int
    status: str = OrderStatus.PENDING
    refunded_amount: Decimal | None = None


def order_import_check(item: ImportedOrder) -> ImportedOrder:
    """Check an imported order's status and refunded amount against its total (no query)."""
    if item.status not in _REACHABLE:  # every status (OrderStatus.values builds a list per call)
        raise OrderInvalid(
            f"{item.status} is not an order status.", code="invalid-status", field="status"
        )
    total = item.draft.total
    refunded = item.refunded_amount
    if refunded is None:
        refunded = total if item.status == OrderStatus.REFUNDED else ZERO
    refunded = _amount(refunded, "refunded_amount")
    if refunded > total:
        raise OrderInvalid(
            "refunded_amount is more than the order's total.",
            code="refund-exceeds-paid",
            field="refunded_amount",
        )
    if item.status == OrderStatus.REFUNDED and refunded != total:
        raise OrderInvalid(
            "A refunded order was refunded in full; send refunded_amount = total, or the "
            "status it had (paid or fulfilled) with a partial refund.",
            code="invalid-status",
            field="refunded_amount",
        )
    if refunded and item.status not in (*REFUNDABLE_STATUSES, OrderStatus.REFUNDED):
        raise OrderInvalid(
            f"An order that is {item.status} has no refund.",
            code="invalid-status",
            field="refunded_amount",
        )
    if item.status in REFUNDABLE_STATUSES and refunded == total and total > ZERO:
        raise OrderInvalid(
            "An order refunded in full is refunded; send status refunded.",
            code="invalid-status",
            field="status",
        )
    return ImportedOrder(
        draft=item.draft, customer_id=item.customer_id, status=item.status, refunded_amount=refunded
    )


def _same_order(order: Order, item: ImportedOrder) -> bool:
    draft = item.draft
    return (
        order.customer_id == item.customer_id
        and order.total == draft.total
        and order.currency == draft.currency
        and order.placed_at == draft.placed_at
    )


# The customers of an import batch that exist (erased ones place no more orders) and their
# default addresses, in one query.
_IMPORT_CUSTOMERS_SQL = f"""
SELECT c.id, b.id, s.id, {_ADDRESS_COLUMNS} FROM {_CUSTOMERS} c
LEFT JOIN {_ADDRESSES} b ON b.id = c.default_billing_address_id
LEFT JOIN {_ADDRESSES} s ON s.id = c.default_shipping_address_id
WHERE c.id {{ids}} AND c.erased_at IS NULL
"""


def _ids_sql(ids: list) -> tuple[str, list]:
    """`= ANY(%s)` with one array on PostgreSQL (a query with hundreds of placeholders cost
    psycopg more CPU to convert than the rows it read), `IN (%s, …)` elsewhere."""
    if connection.vendor == "postgresql":
        return "= ANY(%s)", [list(ids)]
    return f"IN ({', '.join(['%s'] * len(ids))})", list(ids)


def _import_customers(customer_ids: list[int]) -> dict[int, tuple[dict, dict]]:
    """{customer id: (billing, shipping)} for the batch's customers: their default addresses
    as orders keep them ({} for none)."""
    n = len(ADDRESS_FIELDS)
    found = {}
    condition, params = _ids_sql(customer_ids)
    with connection.cursor() as cursor:
        cursor.execute(_IMPORT_CUSTOMERS_SQL.format(ids=condition), params)
        for row in cursor.fetchall():
            billing = dict(zip(ADDRESS_FIELDS, row[3 : 3 + n], strict=True)) if row[1] else {}
            shipping = dict(zip(ADDRESS_FIELDS, row[3 + n :], strict=True)) if row[2] else {}
            found[row[0]] = (billing, shipping)
    return found


_EXISTING_COLUMNS = ", ".join(
    f.column
    for f in Order._meta.concrete_fields
    if f.name not in ("billing_address", "shipping_address")
)


def _import_existing(numbers: list[str]):
    """The batch's orders already there, locked in id order (without their addresses)."""
    if connection.vendor != "postgresql":
        return Order.objects.filter(number__in=numbers).defer("billing_address", "shipping_address")
    return Order.objects.raw(
        f"SELECT {_EXISTING_COLUMNS} FROM {_ORDERS} WHERE number = ANY(%s) ORDER BY id "
        "FOR NO KEY UPDATE",
        [numbers],
    )


@transaction.atomic
def orders_import(
    items: list[ImportedOrder],
    *,
    wait_turn: Callable[[], None] | None = None,
    actor=None,
) -> list[tuple[str, Order] | OrderError]:
    """Apply a batch of checked imported orders (order_import_check) in one transaction: each
    one is created, moved forward (updated) or found as it is (unchanged), or refused with the
    OrderError saying why. Every customer whose finalized orders changed gets its statistics
    adjusted (PostgreSQL: by what the batch changed, in one statement, as payments do;
    elsewhere recomputed from its orders). Order numbers must be distinct in a batch.

    Set-based: a few queries per batch, not per order (a shop's history is millions of
    orders). Locks: the batch's existing orders by id, then its customers' rows by the
    statistics' UPDATE.

    `wait_turn`, if given, is called once, after the orders are written and before the
    customers' rows are touched (or before returning to commit when none is): the NDJSON
    import writes a batch's orders on one connection while the batch before it updates its
    customers on another, and makes each batch wait there until the one before it is
    committed and answered.

    `actor`: the staff member who imports (the back office's CSV import), credited in the
    customers' change history; without one (the storefront API) the shop is.
    """
    numbers = [item.draft.number for item in items]
    if len(set(numbers)) != len(numbers):
        raise ValueError("An import batch has distinct order numbers.")
    existing = {order.number: order for order in _import_existing(numbers)}
    customers = _import_customers(sorted({item.customer_id for item in items}))
    results: list = [None] * len(items)
    new_orders, new_items, changed_orders = [], [], []
    # The push campaign each new order is credited to, read for the whole batch at once.
    credited = iter(
        campaigns_credited(
            [
                (item.customer_id, item.draft.placed_at)
                for item in items
                if item.draft.number not in existing and item.customer_id in customers
            ]
        )
    )
    # The launches that attribute the new orders sent without a source, for the whole batch.
    unattributed = [
        i
        for i, item in enumerate(items)
        if item.draft.attribution is None
        and item.draft.number not in existing
        and item.customer_id in customers
    ]
    attributions = dict(
        zip(
            unattributed,
            _attributions_for(
                [(items[i].customer_id, items[i].draft.placed_at) for i in unattributed]
            ),
            strict=True,
        )
    )
    previous = {}  # number: (status, refunded amount) before, for the orders this batch moves
    for i, item in enumerate(items):
        order = existing.get(item.draft.number)
        addresses = customers.get(item.customer_id)
        if addresses is None:
            results[i] = OrderInvalid(
                "is not a customer of this shop", code="unknown-customer", field="customer_id"
            )
        elif order is None:
            order = order_build(
                customer_id=item.customer_id,
                draft=item.draft,
                billing=addresses[0],
                shipping=addresses[1],
                push_campaign_id=next(credited),
                attribution=attributions.get(i),
            )
            order.status = item.status
            order.refunded_amount = item.refunded_amount
            new_orders.append(order)
            new_items.append(item)
            results[i] = ("created", order)
        elif not _same_order(order, item):
            results[i] = order_number_taken(item.draft.number)
        elif (order.status, order.refunded_amount) == (item.status, item.refunded_amount):
            results[i] = ("unchanged", order)
        elif item.status not in _REACHABLE[order.status] or (
            item.refunded_amount < order.refunded_amount
        ):
            results[i] = _refuse_transition(order, item.status)
        else:
            previous[order.number] = (order.status, order.refunded_amount)
            order.status = item.status
            order.refunded_amount = item.refunded_amount
            changed_orders.append(order)
            results[i] = ("updated", order)
    copy = connection.vendor == "postgresql"
    if new_orders and copy:
        _orders_copy(new_orders, new_items)
    elif new_orders:
        Order.objects.bulk_create(new_orders)
        OrderLine.objects.bulk_create(
            [
                row
                for order, item in zip(new_orders, new_items, strict=True)
                for row in item.draft.line_rows(order)
            ],
            batch_size=2000,
        )
    if changed_orders:
        Order.objects.bulk_update(changed_orders, ["status", "refunded_amount"])
    at = timezone.now()
    moved = [
        (order, {"status": [previous.get(order.number, ("",))[0], order.status]})
        for order in (*new_orders, *changed_orders)
    ]
    if copy:
        _copy(AuditEntry, _AUDIT_FIELDS, (_audit_row(o, c, at, actor) for o, c in moved))
    else:
        AuditEntry.objects.bulk_create(
            [_audit_entry(o, AuditAction.ORDER_IMPORT, c, at, actor) for o, c in moved],
            batch_size=1000,
        )
    finalized = [o for o in (*new_orders, *changed_orders) if o.status in FINALIZED_STATUSES]
    if wait_turn is not None:
        wait_turn()
    if not finalized:
        return results
    if copy:
        _customers_stats_add(finalized, previous)
    else:
        _customers_stats_refresh(
            sorted({o.customer_id for o in finalized}),
            [o.pk for o in finalized if previous.get(o.number, ("",))[0] not in FINALIZED_STATUSES],
        )
    return results


def _customers_stats_add(finalized: list[Order], previous: dict) -> None:
    """PostgreSQL: add what a batch changed among finalized orders to their customers'
    statistics (_STATS_ADD_SQL), and record the products of the newly finalized ones."""
    rows = []  # customer, orders added, net added, placed_at, id, source, medium
    added = []
    for order in finalized:
        before, refunded_before = previous.get(order.number, ("", ZERO))
        if before in FINALIZED_STATUSES:
            if order.refunded_amount != refunded_before:  # only a refund moves the statistics
                net = refunded_before - order.refunded_amount
                rows.append((order.customer_id, 0, net, None, None, "", ""))
            continue
        added.append(order.pk)
        net = order.total - order.refunded_amount
        rows.append(
            (order.customer_id, 1, net, order.placed_at, order.pk, order.source, order.medium)
        )
    if rows:
        names = ("customers", "counts", "nets", "placed", "ids", "sources", "media")
        arrays = dict(zip(names, map(list, zip(*rows, strict=True)), strict=True))
        with connection.cursor() as cursor:
            # The customers' rows locked in id order first: an UPDATE ... FROM locks them in
            # its join's order, and two batches naming the same customers in another order
            # deadlocked (seen in CI: two imports and refunds of the same two customers).
            cursor.execute(_CUSTOMERS_LOCK_SQL, [sorted({row[0] for row in rows})])
            cursor.execute(_STATS_ADD_SQL, arrays)
    if added:
        # After the customers' rows, as a payment does (its statistics, then its products):
        # the same order of locks everywhere.
        where, params = finalized_where()
        customer_products_add(where=f"o.id = ANY(%s) AND {where}", params=[added, *params])


_LINE_COLUMNS = [
    OrderLine._meta.get_field(name)
    for name in ("order", "product_name", "sku", "quantity", "unit_price", "line_total")
]


def _copy(model, columns, rows) -> None:
    """COPY rows into a model's table (PostgreSQL): `columns` are column names or fields."""
    names = ", ".join(c if isinstance(c, str) else c.column for c in columns)
    sql = f"COPY {model._meta.db_table} ({names}) FROM STDIN"
    with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
        for row in rows:
            copy.write_row(row)


_ORDER_ATTNAMES = [f.attname for f in _ORDER_FIELDS]
_ORDER_JSON = [i for i, f in enumerate(_ORDER_FIELDS, start=1) if isinstance(f, JSONField)]
_ORDER_STATUS = 1 + _ORDER_ATTNAMES.index("status")  # a choice: COPY takes its value


def _order_row(order: Order) -> list:
    """A new order as COPY takes it (text format: JSON as its text, the status as its value;
    id, then _ORDER_FIELDS), read from the instance's attributes (none of Order's fields
    computes its value on save)."""
    values = order.__dict__
    row = [order.pk, *(values[name] for name in _ORDER_ATTNAMES)]
    for i in _ORDER_JSON:
        row[i] = json.dumps(row[i])
    row[_ORDER_STATUS] = str(row[_ORDER_STATUS])
    return row


def _orders_copy(orders: list[Order], items: list[ImportedOrder]) -> None:
    """Insert new orders and their lines with COPY (PostgreSQL): their ids are taken from
    the orders' sequence first (one query), so the lines can name them. A batch's orders
    cost a fraction of bulk_create's CPU, in Django and in PostgreSQL."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
            [_ORDERS, len(orders)],
        )
        ids = [row[0] for row in cursor.fetchall()]
    for order, pk in zip(orders, ids, strict=True):
        order.pk = pk
        order._state.adding = False
        order._state.db = connection.alias
    _copy(Order, ["id", *_ORDER_FIELDS], (_order_row(order) for order in orders))
    _copy(
        OrderLine,
        _LINE_COLUMNS,
        (
            (
                order.pk,
                line.product_name,
                line.sku,
                line.quantity,
                line.unit_price,
                line.unit_price * line.quantity,
            )
            for order, item in zip(orders, items, strict=True)
            for line in item.draft.lines
        ),
    )


# PostgreSQL: a batch's changes added to its customers' statistics, as the payment and refund
# statements add one order's (one UPDATE, no read of the customers' other orders; the rows locked in
# id order just before, _CUSTOMERS_LOCK_SQL): the arrays hold one row per order (customer, orders
# added, net added, placed_at, order id, source, medium), placed_at NULL for an order that was
# finalized already (a refund: only its net moves). PostgreSQL evaluates each customer's row on its
# newest committed version, so concurrent payments and refunds of the same customers add up with the
# batch's. A customer with thousands of orders costs what one with a single order does.
_BATCH_NEWER = (
    "(d.last_at IS NOT NULL AND (c.last_order_at IS NULL OR c.last_order_at < d.last_at"
    " OR (c.last_order_at = d.last_at AND COALESCE(c.last_order_id, 0) < d.last_id)))"
)
_BATCH_LAST = f"CASE WHEN {_BATCH_NEWER} THEN d.last_at ELSE c.last_order_at END"
_CUSTOMERS_LOCK_SQL = (
    f"SELECT 1 FROM {_CUSTOMERS} WHERE id = ANY(%s::bigint[]) ORDER BY id FOR NO KEY UPDATE"
)
_STATS_ADD_SQL = f"""
WITH rows AS (
    SELECT * FROM unnest(%(customers)s::bigint[], %(counts)s::int[], %(nets)s::numeric[],
                         %(placed)s::timestamptz[], %(ids)s::bigint[], %(sources)s::text[],
                         %(media)s::text[])
        AS r(customer_id, n, net, at, order_id, source, medium)
), newest AS (
    SELECT DISTINCT ON (customer_id) customer_id, at, order_id, source, medium
    FROM rows WHERE at IS NOT NULL ORDER BY customer_id, at DESC, order_id DESC
), d AS (
    SELECT t.customer_id, t.n, t.net, t.first_at, t.dates, newest.at AS last_at,
           newest.order_id AS last_id, newest.source, newest.medium
    FROM (SELECT customer_id, sum(n) AS n, sum(net) AS net, min(at) AS first_at,
                 coalesce(array_agg(at) FILTER (WHERE at IS NOT NULL), '{{}}') AS dates
          FROM rows GROUP BY customer_id) t
    LEFT JOIN newest USING (customer_id)
)
UPDATE {_CUSTOMERS} c SET
    orders_count = c.orders_count + d.n,
    total_spent = c.total_spent + d.net,
    first_order_at = CASE WHEN d.first_at IS NOT NULL
                               AND (c.first_order_at IS NULL OR c.first_order_at > d.first_at)
                          THEN d.first_at ELSE c.first_order_at END,
    last_order_at = {_BATCH_LAST},
    last_order_id = CASE WHEN {_BATCH_NEWER} THEN d.last_id ELSE c.last_order_id END,
    last_source = CASE WHEN {_BATCH_NEWER} THEN d.source ELSE c.last_source END,
    last_medium = CASE WHEN {_BATCH_NEWER} THEN d.medium ELSE c.last_medium END,
    ({", ".join(LATEST_ORDER_DATES[1:])}) = (
        SELECT {", ".join(f"m[{k}]" for k in range(2, len(LATEST_ORDER_DATES) + 1))}
        FROM (SELECT array_agg(at ORDER BY at DESC) AS m
              FROM unnest(d.dates || ARRAY[{", ".join(f"c.{c}" for c in LATEST_ORDER_DATES)}])
                  AS latest(at)
              WHERE at IS NOT NULL) AS merged
    ),
    lifecycle_group = {
    group_sql(
        "postgresql", n="c.orders_count + d.n", spent="c.total_spent + d.net", last=_BATCH_LAST
    )
}
FROM d WHERE c.id = d.customer_id
"""


def _customers_stats_refresh(customer_ids: list[int], order_ids: list[int] | None = None) -> None:
    """The import's statistics where there is no PostgreSQL: recompute the customers'
    statistics from their orders (SQLite runs one write transaction at a time, so nothing
    changes them between the read and the write); write only those that moved.

    The products they bought (CustomerProduct) are added from `order_ids` when given (the
    orders a batch created or changed: every other finalized order's products are recorded
    already, by the call or the batch that finalized it), else from all their orders."""
    if customer_ids:
        where, params = finalized_where()
        if order_ids is None:
            ids = ", ".join(["%s"] * len(customer_ids))
            which = f"o.customer_id IN ({ids})"
            params = [*customer_ids, *params]
        else:
            which = f"o.id IN ({', '.join(['%s'] * len(order_ids))})" if order_ids else "1 = 0"
            params = [*order_ids, *params]
        customer_products_add(where=f"{which} AND {where}", params=params)
    fields = _STATS_FIELDS
    truth = customer_stats_for(customer_ids)
    stored = Customer.objects.filter(pk__in=customer_ids).only("pk", *fields)
    changed = []
    for customer in stored:
        stats = truth[customer.pk]
        if any(getattr(customer, f) != getattr(stats, f) for f in fields):
            for f in fields:
                setattr(customer, f, getattr(stats, f))
            changed.append(customer)
    if changed:
        Customer.objects.bulk_update(changed, list(fields), batch_size=500)
    customers_group_refresh(customer_ids)
