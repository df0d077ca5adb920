"""A customer's address book ("My addresses"): add, correct, remove, list."""

from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from ninja import Router, Status
from pydantic import Field

from clients.models import ADDRESS_FIELDS, Address, AuditOrigin
from clients.services import (
    Conflict,
    address_create,
    address_delete,
    address_update,
    customer_update_by_customer,
)
from storefront.auth import ApiKeyAuth
from storefront.endpoints.customers import customer_get
from storefront.models import Scope
from storefront.problems import Problem
from storefront.schemas import Country, Flag, In, Out, Phone, Text, Update

router = Router()
READ = [ApiKeyAuth(Scope.READ)]
WRITE = [ApiKeyAuth(Scope.CUSTOMERS_WRITE)]


class AddressCreate(In):
    name: Text(200, 1)
    company: Text(200) = ""
    line1: Text(200, 1)
    line2: Text(200) = ""
    postal_code: Text(20, 1)
    city: Text(100, 1)
    region: Text(100) = ""
    country: Country
    phone: Phone = ""
    default_billing: Flag = Field(False, description="Make it the default billing address.")
    default_shipping: Flag = Field(False, description="Make it the default shipping address.")


class AddressUpdate(Update):
    """Only the fields sent change; null is no value: leave a field out to keep it."""

    name: Text(200, 1) = None
    company: Text(200) = None
    line1: Text(200, 1) = None
    line2: Text(200) = None
    postal_code: Text(20, 1) = None
    city: Text(100, 1) = None
    region: Text(100) = None
    country: Country = None
    phone: Phone = None


class AddressOut(Out):
    id: int
    customer_id: int
    name: str
    company: str
    line1: str
    line2: str
    postal_code: str
    city: str
    region: str
    country: str
    phone: str
    default_billing: bool
    default_shipping: bool


def _out(address: Address, customer) -> dict:
    return {
        **{f: getattr(address, f) for f in ("id", "customer_id", *ADDRESS_FIELDS)},
        "default_billing": customer.default_billing_address_id == address.pk,
        "default_shipping": customer.default_shipping_address_id == address.pk,
    }


def _address(customer_id: int, address_id: int) -> Address:
    # `customer__pk`, not `customer_id`: Django checks an id against the range of the column it
    # names (an id past bigint matches nothing), but not through the foreign key's own column.
    return get_object_or_404(Address, pk=address_id, customer__pk=customer_id)


@router.get(
    "/{int:customer_id}/addresses",
    response=list[AddressOut],
    auth=READ,
    url_name="address-list",
)
def address_list(request, customer_id: int):
    """The customer's addresses, oldest first."""
    customer = customer_get(customer_id)
    return [_out(a, customer) for a in customer.addresses.order_by("pk")]


@router.post(
    "/{int:customer_id}/addresses",
    response={201: AddressOut},
    auth=WRITE,
    url_name="address-create",
)
def address_add(request, customer_id: int, payload: AddressCreate, response: HttpResponse):
    """The customer added an address. Their first address becomes both defaults."""
    customer = customer_get(customer_id)
    data = payload.model_dump()
    billing, shipping = data.pop("default_billing"), data.pop("default_shipping")
    address = address_create(customer=customer, origin=AuditOrigin.CUSTOMER, **data)
    if billing or shipping:
        customer_update_by_customer(
            customer=customer,
            fields={},
            default_billing_address_id=address.pk if billing else None,
            default_shipping_address_id=address.pk if shipping else None,
        )
    customer.refresh_from_db(fields=["default_billing_address", "default_shipping_address"])
    response["Location"] = reverse("api:address-detail", args=[customer_id, address.pk])
    return Status(201, _out(address, customer))


@router.get(
    "/{int:customer_id}/addresses/{int:address_id}",
    response=AddressOut,
    auth=READ,
    url_name="address-detail",
)
def address_detail(request, customer_id: int, address_id: int):
    """One of the customer's addresses."""
    customer = customer_get(customer_id)
    return _out(_address(customer_id, address_id), customer)


@router.patch(
    "/{int:customer_id}/addresses/{int:address_id}",
    response=AddressOut,
    auth=WRITE,
    url_name="address-update",
)
def address_change(request, customer_id: int, address_id: int, payload: AddressUpdate):
    """The customer corrected an address; orders keep the copy they were placed with."""
    address = _address(customer_id, address_id)
    sent = payload.model_dump(exclude_unset=True)
    try:
        address = address_update(
            address=address,
            actor=None,
            version=address.version,
            origin=AuditOrigin.CUSTOMER,
            **sent,
        )
    except Conflict:
        raise Problem("conflict", "The address changed during this call; send it again.") from None
    except Address.DoesNotExist:
        # Removed by a concurrent call after it was read above (it was a 500).
        raise Http404 from None
    return _out(address, customer_get(customer_id))


@router.delete(
    "/{int:customer_id}/addresses/{int:address_id}",
    response={204: None},
    auth=WRITE,
    url_name="address-delete",
)
def address_remove(request, customer_id: int, address_id: int):
    """The customer removed an address. If it was a default, that default becomes empty."""
    try:
        address_delete(address=_address(customer_id, address_id), origin=AuditOrigin.CUSTOMER)
    except Address.DoesNotExist:
        raise Http404 from None  # removed by a concurrent call after it was read
    return Status(204, None)
