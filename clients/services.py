"""Every change to customers, addresses and notes goes through here."""

from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from clients.models import ADDRESS_FIELDS, Address, AuditAction, AuditEntry, Customer, Note
from clients.search import customer_search_text


@dataclass(frozen=True)
class Conflict(Exception):
    """Someone saved the same record since the form was read: nothing was written."""

    # {"field": [value in the form's copy, value saved meanwhile]}
    changes: dict
    by: str = ""
    at: datetime | None = None


def audit_record(*, customer: Customer, actor, action: AuditAction, changes: dict) -> AuditEntry:
    """Write one audit entry (who, when, what, before -> after) for a change to a customer."""
    return AuditEntry.objects.create(
        customer=customer,
        actor=actor,
        at=timezone.now(),
        action=AuditAction(action),  # an action without a label is refused (ValueError)
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
            action=AuditAction.ADDRESS_CREATE,
            changes={"address": ["", str(address)]},
        )
    return address


# --- The client page: contact, addresses, note -----------------------------------------

CONTACT_FIELDS = ("first_name", "last_name", "phone")
DEFAULT_ADDRESS_FIELDS = ("default_billing_address", "default_shipping_address")


def _last_change(customer: Customer, action: str) -> dict:
    """Who made the newest change of a kind to a customer and when, for a conflict message."""
    entry = (
        AuditEntry.objects.filter(customer=customer, action=action)
        .select_related("actor")
        .order_by("-at", "-id")
        .first()
    )
    if entry is None:
        return {}
    return {"by": entry.actor.get_username() if entry.actor else "", "at": entry.at}


def _check_version(
    *,
    customer: Customer,
    action: str,
    current: dict,
    version: int,
    stored_version: int,
    base: dict | None,
) -> None:
    """Refuse a save made from an older version when a field it edits changed meanwhile.

    `current` holds the fields' stored values, `base` the values the form was read with.
    A newer version that only changed other fields (or changed nothing this form edits) is
    not a conflict: the save writes only this form's fields, so nothing is overwritten.
    """
    if version == stored_version:
        return
    if base is None:
        raise Conflict(changes={}, **_last_change(customer, action))
    changes = {
        name: [base.get(name, ""), value]
        for name, value in current.items()
        if base.get(name, "") != value
    }
    if changes:
        raise Conflict(changes=changes, **_last_change(customer, action))


def customer_contact_values(customer: Customer) -> dict[str, str]:
    """The contact fields as a form edits them (and as a conflict compares them)."""
    return {name: getattr(customer, name) for name in CONTACT_FIELDS}


@transaction.atomic
def customer_update_contact(
    *,
    customer: Customer,
    actor,
    version: int,
    first_name: str,
    last_name: str,
    phone: str,
    base: dict | None = None,
) -> Customer:
    """Correct a customer's name and phone. The email is not editable from the back office.

    `version` is the customer's version the form was read at and `base` its contact values
    then; raises Conflict if someone changed those fields since.
    """
    customer = Customer.objects.select_for_update().get(pk=customer.pk)
    before = customer_contact_values(customer)
    _check_version(
        customer=customer,
        action=AuditAction.CONTACT_UPDATE,
        current=before,
        version=version,
        stored_version=customer.version,
        base=base,
    )
    after = {
        "first_name": first_name.strip(),
        "last_name": last_name.strip(),
        "phone": phone.strip(),
    }
    changes = {
        name: [before[name], after[name]] for name in CONTACT_FIELDS if before[name] != after[name]
    }
    if not changes:
        return customer
    for name in changes:
        setattr(customer, name, after[name])
    customer.version += 1
    customer_refresh_search_text(customer)
    customer.save(update_fields=[*changes, "version", "search_text"])
    audit_record(customer=customer, actor=actor, action=AuditAction.CONTACT_UPDATE, changes=changes)
    return customer


def customer_default_values(customer: Customer) -> dict[str, int | None]:
    """The ids of the default billing and shipping addresses (and as a conflict compares them)."""
    return {name: getattr(customer, f"{name}_id") for name in DEFAULT_ADDRESS_FIELDS}


def _address_labels(changes: dict) -> dict:
    """Address ids in `changes` replaced by the addresses as staff read them."""
    ids = {pk for pair in changes.values() for pk in pair if isinstance(pk, int)}
    labels = {a.pk: str(a) for a in Address.objects.filter(pk__in=ids)}
    return {
        name: [labels.get(before, ""), labels.get(after, "")]
        for name, (before, after) in changes.items()
    }


@transaction.atomic
def address_set_default(
    *,
    customer: Customer,
    actor,
    version: int,
    billing: Address,
    shipping: Address,
    base: dict | None = None,
) -> Customer:
    """Choose the customer's default billing and shipping addresses among its own addresses."""
    customer = Customer.objects.select_for_update().get(pk=customer.pk)
    if billing.customer_id != customer.pk or shipping.customer_id != customer.pk:
        raise ValueError("A default address must be one of the customer's own addresses.")
    before = customer_default_values(customer)
    try:
        _check_version(
            customer=customer,
            action=AuditAction.DEFAULT_ADDRESSES,
            current=before,
            version=version,
            stored_version=customer.version,
            base=base,
        )
    except Conflict as conflict:
        raise Conflict(
            changes=_address_labels(conflict.changes), by=conflict.by, at=conflict.at
        ) from None
    after = {"default_billing_address": billing.pk, "default_shipping_address": shipping.pk}
    changed = [name for name in DEFAULT_ADDRESS_FIELDS if before[name] != after[name]]
    if not changed:
        return customer
    changes = _address_labels({name: [before[name], after[name]] for name in changed})
    customer.default_billing_address = billing
    customer.default_shipping_address = shipping
    customer.country = billing.country
    customer.version += 1
    customer.save(update_fields=[*DEFAULT_ADDRESS_FIELDS, "country", "version"])
    audit_record(
        customer=customer, actor=actor, action=AuditAction.DEFAULT_ADDRESSES, changes=changes
    )
    return customer


def address_values(address: Address) -> dict[str, str]:
    """An address's fields as a form edits them (and as a conflict compares them)."""
    return address.as_snapshot()


@transaction.atomic
def address_update(
    *, address: Address, actor, version: int, base: dict | None = None, **fields: str
) -> Address:
    """Correct an address in a customer's book; orders keep the copy they were placed with."""
    unknown = set(fields) - set(ADDRESS_FIELDS)
    if unknown:
        raise TypeError(f"Not address fields: {', '.join(sorted(unknown))}")
    customer = Customer.objects.select_for_update().get(pk=address.customer_id)
    address = Address.objects.select_for_update().get(pk=address.pk)
    before = address_values(address)
    _check_version(
        customer=customer,
        action=AuditAction.ADDRESS_UPDATE,
        current=before,
        version=version,
        stored_version=address.version,
        base=base,
    )
    after = {**before, **{name: value.strip() for name, value in fields.items()}}
    changed = [name for name in ADDRESS_FIELDS if before[name] != after[name]]
    if not changed:
        return address
    for name in changed:
        setattr(address, name, after[name])
    address.version += 1
    address.save(update_fields=[*changed, "version"])
    if customer.default_billing_address_id == address.pk and customer.country != address.country:
        customer.country = address.country
        customer.save(update_fields=["country"])
    changes = {name: [before[name], after[name]] for name in changed}
    changes["address"] = [str(Address(**before)), str(address)]
    audit_record(customer=customer, actor=actor, action=AuditAction.ADDRESS_UPDATE, changes=changes)
    return address


@transaction.atomic
def note_save(*, customer: Customer, actor, text: str, based_on: int | None) -> Note | None:
    """Save a new version of the customer's note; earlier versions are kept.

    `based_on` is the id of the newest note the form was read with (None if there was none);
    raises Conflict if someone saved the note since. Returns the new version, or None when
    the text did not change.
    """
    # Locking the customer serializes note saves, so "newest" cannot change under us.
    customer = Customer.objects.select_for_update().get(pk=customer.pk)
    current = (
        Note.objects.filter(customer=customer)
        .select_related("author")
        .order_by("-created_at", "-id")
        .first()
    )
    current_id = current.pk if current else None
    if current_id != based_on:
        base = Note.objects.filter(customer=customer, pk=based_on).values_list("text", flat=True)
        raise Conflict(
            changes={"note": [base.first() or "", current.text if current else ""]},
            by=current.author.get_username() if current and current.author else "",
            at=current.created_at if current else None,
        )
    before = current.text if current else ""
    text = text.strip().replace("\r\n", "\n")
    if text == before:
        return None
    note = Note.objects.create(
        customer=customer, text=text, author=actor, created_at=timezone.now()
    )
    audit_record(
        customer=customer,
        actor=actor,
        action=AuditAction.NOTE_SAVE,
        changes={"note": [before, text]},
    )
    return note
