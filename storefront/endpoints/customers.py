"""Customers: sign-up, read, the customer's own changes, and a list to sync from."""

from datetime import UTC, datetime, timedelta

from django.db import connection
from django.db.models import DateTimeField, FloatField, Func, Q, Value
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from ninja import Query, Router, Status
from pydantic import Field

from clients.models import Customer
from clients.selectors import customers_with_email, customers_with_external_id
from clients.services import (
    NotOwnAddress,
    Taken,
    customer_sign_up,
    customer_update_by_customer,
)
from storefront.auth import ApiKeyAuth
from storefront.models import Scope
from storefront.problems import Problem, field_error
from storefront.schemas import (
    AwareDatetime,
    Email,
    Id,
    In,
    Language,
    Out,
    Page,
    Phone,
    QueryInt,
    Text,
    Update,
)
from storefront.selectors import customers_sync_horizon
from storefront.services import visitor_link

router = Router()
READ = [ApiKeyAuth(Scope.READ)]
WRITE = [ApiKeyAuth(Scope.CUSTOMERS_WRITE)]


class CustomerCreate(In):
    email: Email
    first_name: Text(150) = ""
    last_name: Text(150) = ""
    phone: Phone = ""
    language: Language = ""
    external_id: Text(100) = Field("", description="The shop's own id for this customer.")
    visitor_id: Text(64) = Field(
        "",
        description="The anonymous visitor id the app or site used before the sign-up: "
        "its launches are linked to the new customer.",
    )


class CustomerUpdate(Update):
    """Only the fields sent change (the customer's "My details"); null is no value: leave a
    field out to keep it (the schema says so: no field is nullable)."""

    email: Email = None
    first_name: Text(150) = None
    last_name: Text(150) = None
    phone: Phone = None
    language: Language = None
    external_id: Text(100) = None
    default_billing_address_id: Id = None
    default_shipping_address_id: Id = None


class CustomerOut(Out):
    id: int
    email: str
    first_name: str
    last_name: str
    phone: str
    language: str
    external_id: str
    created_at: datetime
    updated_at: datetime
    default_billing_address_id: int | None
    default_shipping_address_id: int | None
    push_opt_in: bool


class CustomerPage(Page):
    data: list[CustomerOut]
    sync_from: datetime = Field(
        description=(
            "Keep the first page's value and pass it as `updated_since` on the next sync: "
            "every change this page could not see yet (still being written) is at or after "
            "it. A customer may come again; none is missed. Not the time of your own clock, "
            "nor the last `updated_at` received: a change becomes visible when its "
            "transaction commits, after the time it carries."
        )
    )


_FIELDS = [*CustomerOut.model_fields]


def _taken(exc: Taken) -> Problem:
    what = "email address" if exc.field == "email" else "external_id"
    problem = field_error(exc.field, f"Another customer already has this {what}.", "conflict")
    return problem


def customer_get(customer_id: int) -> Customer:
    """The customer, or a 404 problem (also for an erased customer: it is no longer anyone)."""
    return get_object_or_404(Customer.objects.only(*_FIELDS), pk=customer_id, erased_at=None)


@router.post(
    "",
    response={201: CustomerOut},
    auth=WRITE,
    url_name="customer-create",
    summary="Create a customer (sign-up)",
)
def customer_create(request, payload: CustomerCreate, response: HttpResponse):
    """A customer created an account. The email is unique, compared case-insensitively
    (409 `conflict` if another customer has it), and so is `external_id`."""
    data = payload.model_dump()
    visitor_id = data.pop("visitor_id")
    try:
        customer = customer_sign_up(**data)
    except Taken as exc:
        raise _taken(exc) from None
    if visitor_id:
        visitor_link(visitor_id=visitor_id, customer=customer)
    response["Location"] = reverse("api:customer-detail", args=[customer.pk])
    return Status(201, customer)


@router.get("/{int:customer_id}", response=CustomerOut, auth=READ, url_name="customer-detail")
def customer_detail(request, customer_id: int):
    """One customer."""
    return customer_get(customer_id)


@router.patch("/{int:customer_id}", response=CustomerOut, auth=WRITE, url_name="customer-update")
def customer_update(request, customer_id: int, payload: CustomerUpdate):
    """The customer changed their details in the shop ("My details"), including their email,
    or chose their default billing or shipping address among their own addresses. Recorded
    in the client page's history as made by the customer."""
    customer = customer_get(customer_id)
    sent = payload.model_dump(exclude_unset=True)
    billing = sent.pop("default_billing_address_id", None)
    shipping = sent.pop("default_shipping_address_id", None)
    try:
        customer_update_by_customer(
            customer=customer,
            fields=sent,
            default_billing_address_id=billing,
            default_shipping_address_id=shipping,
        )
    except Taken as exc:
        raise _taken(exc) from None
    except NotOwnAddress as exc:
        raise field_error(exc.field, "is not one of this customer's addresses") from None
    return customer_get(customer_id)


# "<updated_at in microseconds since 1970>-<id>": every value of this form is a position in
# the list (up to the year 5138 and any 64-bit id), so a client (or a fuzzer) that builds one
# from the schema gets a page, not a 422. The opaque base64 cursor it replaces was refused
# unless the API had written it.
CURSOR_PATTERN = r"^[0-9]{1,17}-[0-9]{1,18}$"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _cursor_read(cursor: str) -> tuple[datetime, int]:
    at, pk = cursor.split("-")
    return _EPOCH + int(at) * _MICROSECOND, int(pk)


def _julianday(expression):
    return Func(expression, function="JULIANDAY", output_field=FloatField())


def _julianday_of(at: datetime):
    """`at` as the list compares it: itself on PostgreSQL, as a Julian day on SQLite."""
    if connection.vendor != "sqlite":
        return at
    return _julianday(Value(at, output_field=DateTimeField()))


def _cursor_write(customer: Customer) -> str:
    return f"{(customer.updated_at - _EPOCH) // _MICROSECOND}-{customer.pk}"


class CustomerFilters(In):
    updated_since: AwareDatetime | None = Field(
        None, description="Only customers whose details changed at or after this time."
    )
    # Text: a NUL byte is no text (PostgreSQL refuses it in a comparison: it was a 500).
    email: Text(254) | None = Field(None, description="Exact, case-insensitive.")
    external_id: Text(100) | None = None
    cursor: str | None = Field(
        None, pattern=CURSOR_PATTERN, description="A `next_cursor` the list returned."
    )
    limit: QueryInt = Field(50, ge=1, le=200)


@router.get("", response=CustomerPage, auth=READ, url_name="customer-list")
def customer_list(request, filters: Query[CustomerFilters]):
    """Customers in the order their details last changed (then by id), a page at a time:
    follow `next_cursor` until it is null. With `updated_since`, a platform syncs only what
    changed since its last run: pass the `sync_from` of that run's first page (a customer changed
    during the sync shows up again later)."""
    horizon = customers_sync_horizon()  # before the page: what commits meanwhile is on it
    customers = Customer.objects.only(*_FIELDS).filter(erased_at=None)
    changed = "updated_at"
    if connection.vendor == "sqlite":
        # SQLite keeps times as text, and the column's default (Now()) writes milliseconds
        # ("…33.123") where a parameter has microseconds ("…33.123000"): compared as text,
        # the row a cursor points at would not equal it and the next one could be skipped.
        # Compare them as times.
        changed = "updated_jd"
        customers = customers.annotate(updated_jd=_julianday("updated_at"))
    if filters.updated_since:
        customers = customers.filter(**{f"{changed}__gte": _julianday_of(filters.updated_since)})
    if filters.email is not None:
        customers = customers_with_email(filters.email, customers)
    if filters.external_id is not None:
        customers = customers_with_external_id(filters.external_id, customers)
    if filters.cursor is not None:
        at, pk = _cursor_read(filters.cursor)
        at = _julianday_of(at)
        customers = customers.filter(**{f"{changed}__gte": at}).filter(
            Q(**{f"{changed}__gt": at}) | Q(pk__gt=pk)
        )
    page = list(customers.order_by(changed, "pk")[: filters.limit + 1])
    more = len(page) > filters.limit
    page = page[: filters.limit]
    return {
        "data": page,
        "next_cursor": _cursor_write(page[-1]) if more else None,
        "sync_from": horizon,
    }
