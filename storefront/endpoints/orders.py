"""Orders: placed, then paid, fulfilled or cancelled, and refunded, each a separate call.

An order is identified by the shop's order number (unique). Every change goes through
orders/services.py, which keeps the customer's statistics exact; its refusals (an invalid
transition, a refund over what is left, a number already used, an invalid amount) become
409 or 422 problems and change nothing.
"""

import math
import re
from datetime import datetime
from decimal import Decimal
from typing import Annotated

from django.conf import settings
from django.db.models import Prefetch
from django.http import HttpResponse
from django.urls import reverse
from ninja import Query, Router, Status
from pydantic import BeforeValidator, ConfigDict, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

from clients.models import Customer
from clients.selectors import customers_with_external_id
from orders.models import Order, OrderLine, OrderStatus
from orders.selectors import order_lines_shown
from orders.services import (
    MAX_LINES,
    LineInput,
    OrderError,
    order_cancel,
    order_create,
    order_draft,
    order_fulfil,
    order_pay,
    order_refund,
)
from storefront.auth import ApiKeyAuth
from storefront.models import Scope
from storefront.problems import Problem, field_error
from storefront.schemas import AwareDatetime, Id, In, Out, QueryId, QueryInt, Text, WholeNumber

router = Router()
READ = [ApiKeyAuth(Scope.READ)]
WRITE = [ApiKeyAuth(Scope.ORDERS_WRITE)]

# The shop's order number: what it prints on the receipt, also the order's URL.
NUMBER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._#-]{0,31}$"
_NUMBER = re.compile(NUMBER_PATTERN)
Number = Annotated[
    str,
    Field(
        pattern=NUMBER_PATTERN,
        description="The shop's order number, compared as written (`A-1` and `a-1` are two "
        "orders).",
    ),
]
# An amount: a string (exact, "19.90") or a JSON number, at most 2 decimals and 12 digits.
_AMOUNT_PATTERN = r"^[0-9]{1,10}(\.[0-9]{1,2})?$"
_POSITIVE_AMOUNT_PATTERN = r"^([1-9][0-9]{0,9}(\.[0-9]{1,2})?|0\.([1-9][0-9]?|0[1-9]))$"


def _amount_written(pattern: str) -> BeforeValidator:
    """A string amount as the schema's pattern says: Decimal() also read "1e2", "+5", " 5",
    "1_000", "5.000" and other digits than 0-9 ("٥" is 5), which the pattern forbids."""
    compiled = re.compile(pattern)

    def check(value):
        if isinstance(value, str) and not compiled.fullmatch(value):
            raise PydanticCustomError(
                "amount", 'must be an amount such as "19.90" (digits, at most 2 decimals)'
            )
        if isinstance(value, float) and math.isfinite(value):
            # 0.1 + 0.2 sent as 0.30000000000000004: say the decimals are wrong, not that
            # the amount has more than 12 digits (what the Decimal's precision check says).
            exponent = Decimal(repr(value)).as_tuple().exponent
            if exponent < -2:
                raise PydanticCustomError(
                    "amount", "must be an amount with at most 2 decimals, e.g. 19.9 or 19.90"
                )
        return value

    return BeforeValidator(check)


_MONEY_SCHEMA = {
    "anyOf": [
        {"type": "string", "pattern": _AMOUNT_PATTERN},
        # multipleOf: at most 2 decimals, as the string's pattern says (5e-324 is no amount).
        {"type": "number", "minimum": 0, "maximum": 9999999999.99, "multipleOf": 0.01},
    ],
    "description": 'An amount with at most 2 decimals, e.g. "19.90".',
}
Money = Annotated[
    Decimal,
    _amount_written(_AMOUNT_PATTERN),
    Field(ge=0, max_digits=12, decimal_places=2),
    WithJsonSchema(_MONEY_SCHEMA),
]
PositiveMoney = Annotated[
    Decimal,
    _amount_written(_POSITIVE_AMOUNT_PATTERN),
    Field(gt=0, max_digits=12, decimal_places=2),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": _POSITIVE_AMOUNT_PATTERN},
                {
                    "type": "number",
                    "exclusiveMinimum": 0,
                    "maximum": 9999999999.99,
                    "multipleOf": 0.01,
                },
            ],
            "description": 'A positive amount with at most 2 decimals, e.g. "5.00".',
        }
    ),
]


def _currency_pattern(code: str) -> str:
    """The shop's currency, in any case, as a pattern (order_draft accepts no other)."""
    letters = "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else re.escape(c) for c in code)
    return f"^{letters}$"


# order_draft refuses any other currency than the shop's (422): the schema says so, so that a
# client (or a fuzzer) does not send "USD" in a schema-valid order.
Currency = Annotated[
    str,
    Field(pattern=r"^[A-Za-z]{3}$"),
    WithJsonSchema({"type": "string", "pattern": _currency_pattern(settings.SHOP_CURRENCY)}),
]


def order_problem(error: OrderError) -> Problem:
    """A service's refusal as the API answers it (409 for the order's state, 422 otherwise)."""
    message = error.messages[0]
    if error.conflict:
        return Problem(
            error.code,
            message,
            errors=[{"field": error.field, "message": message}] if error.field else [],
        )
    return field_error(error.field or "body", message)


class LineIn(In):
    product_name: Text(200, min_length=1)
    sku: Text(64) = ""
    quantity: WholeNumber = Field(ge=1, le=1_000_000)
    unit_price: Money


# "Exactly one of customer_id and customer_external_id" (_customer_id), said in the schema:
# one given (not null), the other left out or null.
_ONE_CUSTOMER = {
    "oneOf": [
        {
            "required": ["customer_id"],
            "properties": {
                "customer_id": {"type": "integer"},
                "customer_external_id": {"type": "null"},
            },
        },
        {
            "required": ["customer_external_id"],
            "properties": {
                "customer_external_id": {"type": "string"},
                "customer_id": {"type": "null"},
            },
        },
    ]
}


class OrderCreate(In):
    model_config = ConfigDict(json_schema_extra=_ONE_CUSTOMER)  # merged with In's

    number: Number
    customer_id: Id | None = Field(None, description="The back office's customer id...")
    customer_external_id: Text(100) | None = Field(
        None, description="...or the shop's own id for the customer (one of the two)."
    )
    placed_at: AwareDatetime | None = Field(None, description="Now if left out.")
    currency: Currency | None = Field(
        None, description="ISO 4217; the shop's currency if left out (the only one accepted)."
    )
    lines: list[LineIn] = Field(min_length=1, max_length=MAX_LINES)
    shipping: Money = Decimal("0.00")
    tax: Money = Decimal("0.00")
    discount: Money = Decimal("0.00")
    total: Money | None = Field(
        None, description="If sent, checked against lines + shipping + tax - discount."
    )
    source: Text(100) | None = Field(
        None,
        description="utm_source. Leave source, medium and campaign all out to attribute the "
        "order to the customer's last launch with a source (within 30 days).",
    )
    medium: Text(100) | None = None
    campaign: Text(200) | None = None


class RefundCreate(In):
    amount: PositiveMoney = Field(description="What was refunded this time.")


class LineOut(Out):
    product_name: str
    sku: str
    quantity: int
    unit_price: Decimal
    line_total: Decimal


class OrderOut(Out):
    number: str
    customer_id: int
    status: OrderStatus
    placed_at: datetime
    currency: str
    subtotal: Decimal
    shipping: Decimal
    tax: Decimal
    discount: Decimal
    total: Decimal
    refunded_amount: Decimal
    source: str
    medium: str
    campaign: str
    lines: list[LineOut]

    @staticmethod
    def resolve_lines(order):
        # An order just written carries its lines as the call wrote or read them (no query
        # and no model per line); an order read for a GET, its prefetched lines.
        shown = getattr(order, "shown_lines", None)
        return order.lines.all() if shown is None else shown


class OrderPage(Out):
    data: list[OrderOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page."
    )


def _orders():
    return Order.objects.defer("billing_address", "shipping_address").prefetch_related(
        Prefetch("lines", queryset=OrderLine.objects.order_by("pk"))
    )


def _number_known(number: str) -> None:
    """A path that cannot be an order number (a NUL byte, too long...) is no order: 404."""
    if not _NUMBER.fullmatch(number):
        raise Problem("not-found", "No such order.")


def _order_get(number: str) -> Order:
    _number_known(number)
    order = _orders().filter(number=number).first()
    if order is None:
        raise Problem("not-found", f"No order {number}.")
    return order


def _customer_id(payload: OrderCreate) -> int:
    """The order's customer id; a customer given by its id is checked by order_create."""
    if (payload.customer_id is None) == (payload.customer_external_id is None):
        raise field_error("customer_id", "give exactly one of customer_id and customer_external_id")
    if payload.customer_id is not None:
        return payload.customer_id
    pk = (
        customers_with_external_id(
            payload.customer_external_id, Customer.objects.filter(erased_at=None)
        )
        .values_list("pk", flat=True)
        .first()
    )
    if pk is None:
        raise field_error("customer_external_id", "is not a customer of this shop")
    return pk


@router.post(
    "",
    response={201: OrderOut},
    auth=WRITE,
    url_name="order-create",
    summary="Create an order (pending until paid)",
)
def order_create_view(request, payload: OrderCreate, response: HttpResponse):
    """The customer placed an order. It counts in the customer's statistics (orders, total
    spent, last source) once paid. The number is unique: 409 `order-number-taken` if used."""
    customer_id = _customer_id(payload)
    try:
        draft = order_draft(
            number=payload.number,
            lines=[
                LineInput(
                    product_name=line.product_name,
                    sku=line.sku,
                    quantity=line.quantity,
                    unit_price=line.unit_price,
                )
                for line in payload.lines
            ],
            shipping=payload.shipping,
            tax=payload.tax,
            discount=payload.discount,
            total=payload.total,
            currency=payload.currency,
            source=payload.source,
            medium=payload.medium,
            campaign=payload.campaign,
            placed_at=payload.placed_at,
        )
        order = order_create(customer=Customer(pk=customer_id), draft=draft)
    except Customer.DoesNotExist:
        raise field_error("customer_id", "is not a customer of this shop") from None
    except OrderError as error:
        raise order_problem(error) from None
    response["Location"] = reverse("api:order-detail", args=[order.number])
    # The lines just written, as the response shows them (no query to read them back).
    order.shown_lines = draft.line_values()
    return Status(201, order)


@router.get("/{number}", response=OrderOut, auth=READ, url_name="order-detail")
def order_detail(request, number: str):
    """One order with its lines."""
    return _order_get(number)


def _change(number: str, change, **kwargs) -> Order:
    """Apply a service to the order `number`; the changed order (the service read it, locked)
    with its lines, as the response shows it."""
    _number_known(number)
    try:
        order = change(order=Order(number=number), **kwargs)
    except Order.DoesNotExist:
        raise Problem("not-found", f"No order {number}.") from None
    except OrderError as error:
        raise order_problem(error) from None
    order.shown_lines = order_lines_shown(order_id=order.pk)
    return order


@router.post("/{number}/pay", response=OrderOut, auth=WRITE, url_name="order-pay")
def order_pay_view(request, number: str):
    """The order was paid (from pending): it now counts as a purchase. 409
    `invalid-transition` from any other status."""
    return _change(number, order_pay)


@router.post("/{number}/fulfil", response=OrderOut, auth=WRITE, url_name="order-fulfil")
def order_fulfil_view(request, number: str):
    """The paid order was shipped or handed over. 409 `invalid-transition` unless paid."""
    return _change(number, order_fulfil)


@router.post("/{number}/cancel", response=OrderOut, auth=WRITE, url_name="order-cancel")
def order_cancel_view(request, number: str):
    """The pending order was cancelled before payment. A paid order is refunded instead
    (409 `invalid-transition`)."""
    return _change(number, order_cancel)


@router.post("/{number}/refunds", response=OrderOut, auth=WRITE, url_name="order-refund")
def order_refund_view(request, number: str, payload: RefundCreate):
    """Part or all of a paid or fulfilled order was refunded; several refunds add up, and
    the one that reaches the total marks the order refunded. 409 `refund-exceeds-paid` for
    more than is left, `invalid-transition` for an order not paid."""
    return _change(number, order_refund, amount=payload.amount)


# The last order's id: every value of this form is a position in the list (so a client, or a
# fuzzer, that builds one from the schema gets a page, not a 422).
CURSOR_PATTERN = r"^[0-9]{1,18}$"


class OrderFilters(In):
    customer_id: QueryId | None = None
    status: OrderStatus | None = None
    placed_since: AwareDatetime | None = Field(None, description="Placed at or after this.")
    cursor: str | None = Field(
        None, pattern=CURSOR_PATTERN, description="A `next_cursor` the list returned."
    )
    limit: QueryInt = Field(50, ge=1, le=200)


def _cursor_write(order: Order) -> str:
    return str(order.pk)


@router.get("", response=OrderPage, auth=READ, url_name="order-list")
def order_list(request, filters: Query[OrderFilters]):
    """Orders in the order they were recorded, a page at a time: follow `next_cursor`
    until it is null (orders recorded meanwhile appear on later pages)."""
    orders = _orders()
    if filters.customer_id is not None:
        orders = orders.filter(customer_id=filters.customer_id)
    if filters.status is not None:
        orders = orders.filter(status=filters.status)
    if filters.placed_since is not None:
        orders = orders.filter(placed_at__gte=filters.placed_since)
    if filters.cursor is not None:
        orders = orders.filter(pk__gt=int(filters.cursor))
    page = list(orders.order_by("pk")[: filters.limit + 1])
    more = len(page) > filters.limit
    page = page[: filters.limit]
    return {"data": page, "next_cursor": _cursor_write(page[-1]) if more else None}
