"""Every change to customers, addresses and notes goes through here."""

from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from clients.models import Address, AuditEntry, Customer
from clients.search import customer_search_text


@dataclass(frozen=True)
class Conflict(Exception):
    """Someone saved the same record since the form was read: nothing was written."""

    # {"field": [value in the form's copy, value saved meanwhile]}
    changes: dict
    by: str = ""
    at: datetime | None = None


def audit_record(*, customer: Customer, actor, action: str, changes: dict) -> AuditEntry:
    """Write one audit entry (who, when, what, before -> after) for a change to a customer."""
    return AuditEntry.objects.create(
        customer=customer,
        actor=actor,
        at=timezone.now(),
        action=action,
        changes=changes,
    )


def customer_refresh_search_text(customer: Customer) -> None:
    """Recompute the denormalized search column from the contact fields (no save)."""
    customer.search_text = customer_search_text(
        pk=customer.pk,
        first_name=customer.first_name,
        last_name=customer.last_name,
        email=customer.email,
        phone=customer.phone,
    )


@transaction.atomic
def customer_create(
    *,
    email: str,
    first_name: str = "",
    last_name: str = "",
    phone: str = "",
    created_at: datetime | None = None,
) -> Customer:
    """Create a customer account (the storefront's sign-up)."""
    customer = Customer.objects.create(
        email=email.strip(),
        first_name=first_name.strip(),
        last_name=last_name.strip(),
        phone=phone.strip(),
        created_at=created_at or timezone.now(),
    )
    # The search text includes the client ID, known only once the row exists.
    customer_refresh_search_text(customer)
    customer.save(update_fields=["search_text"])
    return customer


@transaction.atomic
def address_create(
    *, customer: Customer, actor=None, make_default: bool = False, **fields
) -> Address:
    """Add an address to a customer's book; the first one becomes the default for both uses."""
    customer = Customer.objects.select_for_update().get(pk=customer.pk)
    address = Address.objects.create(customer=customer, **fields)
    updates = {}
    if make_default or customer.default_billing_address_id is None:
        updates["default_billing_address"] = address
        updates["country"] = address.country
    if make_default or customer.default_shipping_address_id is None:
        updates["default_shipping_address"] = address
    if updates:
        for name, value in updates.items():
            setattr(customer, name, value)
        customer.save(update_fields=list(updates))
    if actor is not None:
        audit_record(
            customer=customer,
            actor=actor,
            action="address_create",
            changes={"address": ["", str(address)]},
        )
    return address
