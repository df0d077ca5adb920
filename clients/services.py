"""Every change to customers, addresses and notes goes through here."""

from dataclasses import dataclass
from datetime import datetime

import phonenumbers
from django.db import IntegrityError, transaction
from django.db.models import Case, Count, Value, When
from django.db.models.functions import Now
from django.utils import timezone

from backoffice.phones import phone_parse
from clients.models import (
    ADDRESS_FIELDS,
    Address,
    AuditAction,
    AuditEntry,
    AuditOrigin,
    Customer,
    Note,
)
from clients.search import customer_search_text
from clients.selectors import customers_with_email, customers_with_external_id


@dataclass(frozen=True)
class Conflict(Exception):
    """Someone saved the same record since the form was read: nothing was written."""

    # {"field": [value in the form's copy, value saved meanwhile]}
    changes: dict
    by: str = ""
    at: datetime | None = None


def audit_record(
    *,
    customer: Customer,
    actor,
    action: AuditAction,
    changes: dict,
    origin: str = AuditOrigin.STAFF,
) -> AuditEntry:
    """Write one audit entry (who, when, what, before -> after) for a change to a customer.

    `origin` says whether staff (`actor`) or the customer, through the shop's API, made it.
    """
    return AuditEntry.objects.create(
        customer=customer,
        actor=actor,
        at=timezone.now(),
        action=AuditAction(action),  # an action without a label is refused (ValueError)
        changes=changes,
        origin=origin,
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
    external_id: str = "",
    language: str = "",
) -> Customer:
    """Create a customer account (the storefront's sign-up)."""
    customer = Customer.objects.create(
        email=email.strip(),
        first_name=first_name.strip(),
        last_name=last_name.strip(),
        phone=phone.strip(),
        created_at=created_at or timezone.now(),
        external_id=external_id,
        language=language,
    )
    # The search text includes the client ID, known only once the row exists.
    customer_refresh_search_text(customer)
    customer.save(update_fields=["search_text"])
    return customer


@transaction.atomic
def address_create(
    *,
    customer: Customer,
    actor=None,
    make_default: bool = False,
    origin: str = AuditOrigin.STAFF,
    **fields,
) -> Address:
    """Add an address to a customer's book; the first one becomes the default for both uses."""
    customer = Customer.objects.select_for_update().get(pk=customer.pk)
    address = Address.objects.create(customer=customer, **fields)
    updates = {"updated_at": timezone.now()}
    if make_default or customer.default_billing_address_id is None:
        updates["default_billing_address"] = address
        updates["country"] = address.country
    if make_default or customer.default_shipping_address_id is None:
        updates["default_shipping_address"] = address
    if updates:
        for name, value in updates.items():
            setattr(customer, name, value)
        customer.save(update_fields=list(updates))
    if actor is not None or origin == AuditOrigin.CUSTOMER:
        audit_record(
            customer=customer,
            actor=actor,
            action=AuditAction.ADDRESS_CREATE,
            changes={"address": ["", str(address)]},
            origin=origin,
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
    customer.updated_at = timezone.now()
    customer_refresh_search_text(customer)
    customer.save(update_fields=[*changes, "version", "updated_at", "search_text"])
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
    """Choose the customer's default billing and shipping addresses among its own addresses.
    Raises Address.DoesNotExist, having changed nothing, if one was removed meanwhile."""
    customer = Customer.objects.select_for_update().get(pk=customer.pk)
    if billing.customer_id != customer.pk or shipping.customer_id != customer.pk:
        raise ValueError("A default address must be one of the customer's own addresses.")
    # Removing an address locks the customer's row first too: once it is ours, an address
    # removed meanwhile is gone for good (choosing it failed at the commit: a 500).
    chosen = {billing.pk, shipping.pk}
    if Address.objects.filter(customer=customer, pk__in=chosen).count() != len(chosen):
        raise Address.DoesNotExist("A chosen address was removed meanwhile.")
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
    customer.updated_at = timezone.now()
    customer.save(update_fields=[*DEFAULT_ADDRESS_FIELDS, "country", "version", "updated_at"])
    audit_record(
        customer=customer, actor=actor, action=AuditAction.DEFAULT_ADDRESSES, changes=changes
    )
    return customer


def address_values(address: Address) -> dict[str, str]:
    """An address's fields as a form edits them (and as a conflict compares them)."""
    return address.as_snapshot()


@transaction.atomic
def address_update(
    *,
    address: Address,
    actor,
    version: int,
    base: dict | None = None,
    origin: str = AuditOrigin.STAFF,
    **fields: str,
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
    customer.updated_at = timezone.now()
    customer.country = (
        address.country if customer.default_billing_address_id == address.pk else customer.country
    )
    customer.save(update_fields=["country", "updated_at"])
    changes = {name: [before[name], after[name]] for name in changed}
    changes["address"] = [str(Address(**before)), str(address)]
    audit_record(
        customer=customer,
        actor=actor,
        action=AuditAction.ADDRESS_UPDATE,
        changes=changes,
        origin=origin,
    )
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


# --- The customer's own changes, through the shop's API ("My details", "My addresses") ------


@dataclass(frozen=True)
class Taken(Exception):
    """Another customer already has this email (compared case-insensitively) or shop id."""

    field: str


@dataclass(frozen=True)
class NotOwnAddress(Exception):
    """An address id that is not in this customer's book."""

    field: str


def _check_unique(*, email: str | None, external_id: str | None, exclude: int | None) -> None:
    others = Customer.objects.exclude(pk=exclude) if exclude else Customer.objects.all()
    if email is not None and customers_with_email(email, others).exists():
        raise Taken("email")
    if external_id and customers_with_external_id(external_id, others).exists():
        raise Taken("external_id")


@transaction.atomic
def customer_sign_up(
    *,
    email: str,
    first_name: str = "",
    last_name: str = "",
    phone: str = "",
    language: str = "",
    external_id: str = "",
    origin: str = AuditOrigin.CUSTOMER,
    created_at: datetime | None = None,
) -> Customer:
    """A customer created an account in the shop; raises Taken if the email or id is used.

    `origin`: the shop (AuditOrigin.SHOP) when it imports an account from its history, with
    `created_at` the day the account was opened there (now if None)."""
    _check_unique(email=email, external_id=external_id, exclude=None)
    try:
        with transaction.atomic():
            customer = customer_create(
                email=email,
                first_name=first_name,
                last_name=last_name,
                phone=phone,
                language=language,
                external_id=external_id,
                created_at=created_at,
            )
    except IntegrityError:
        # A concurrent sign-up with the same email or id won the race.
        _check_unique(email=email, external_id=external_id, exclude=None)
        raise
    changes = {
        name: ["", value]
        for name, value in (
            ("email", customer.email),
            ("first_name", customer.first_name),
            ("last_name", customer.last_name),
            ("phone", customer.phone),
            ("language", customer.language),
        )
        if value
    }
    audit_record(
        customer=customer,
        actor=None,
        action="sign_up",
        changes=changes,
        origin=origin,
    )
    return customer


# What the customer may change about themselves (the back office may not change the email).
CUSTOMER_SELF_FIELDS = ("email", "first_name", "last_name", "phone", "language", "external_id")


@transaction.atomic
def customer_update_by_customer(
    *,
    customer: Customer,
    fields: dict[str, str],
    default_billing_address_id: int | None = None,
    default_shipping_address_id: int | None = None,
    origin: str = AuditOrigin.CUSTOMER,
) -> Customer:
    """The customer changed their details (or their default addresses) in the shop.

    Only the fields given change; raises Taken (email, external_id) or NotOwnAddress.
    `origin`: the shop (AuditOrigin.SHOP) when its history import changes them.
    """
    unknown = set(fields) - set(CUSTOMER_SELF_FIELDS)
    if unknown:
        raise TypeError(f"Not fields a customer changes: {', '.join(sorted(unknown))}")
    customer = Customer.objects.select_for_update().get(pk=customer.pk)
    fields = {name: value.strip() for name, value in fields.items()}
    changed = {n: v for n, v in fields.items() if getattr(customer, n) != v}
    _check_unique(
        email=changed.get("email"), external_id=changed.get("external_id"), exclude=customer.pk
    )
    changes = {name: [getattr(customer, name), value] for name, value in changed.items()}
    defaults = {}
    for name, pk in (
        ("default_billing_address", default_billing_address_id),
        ("default_shipping_address", default_shipping_address_id),
    ):
        if pk is None:
            continue
        if not Address.objects.filter(pk=pk, customer=customer).exists():
            raise NotOwnAddress(f"{name}_id")
        if getattr(customer, f"{name}_id") != pk:
            defaults[name] = [getattr(customer, f"{name}_id"), pk]
    if not changes and not defaults:
        return customer
    for name, (_before, after) in changes.items():
        setattr(customer, name, after)
    update_fields = list(changes)
    for name, (_before, after) in defaults.items():
        setattr(customer, f"{name}_id", after)
        update_fields.append(name)
    if "default_billing_address" in defaults:
        customer.country = Address.objects.get(pk=customer.default_billing_address_id).country
        update_fields.append("country")
    customer.version += 1
    customer.updated_at = timezone.now()
    customer_refresh_search_text(customer)
    try:
        with transaction.atomic():
            customer.save(update_fields=[*update_fields, "version", "updated_at", "search_text"])
    except IntegrityError:
        _check_unique(
            email=changed.get("email"),
            external_id=changed.get("external_id"),
            exclude=customer.pk,
        )
        raise
    audit_record(
        customer=customer,
        actor=None,
        action="customer_update",
        changes={**changes, **_address_labels(defaults)},
        origin=origin,
    )
    return customer


@transaction.atomic
def address_delete(*, address: Address, actor=None, origin: str = AuditOrigin.STAFF) -> None:
    """Remove an address from a customer's book; orders keep the copy they were placed with.

    A default address that is removed leaves that default empty (the shop asks for a new one).
    Raises Address.DoesNotExist, having changed nothing, if it was removed meanwhile (two
    removals at once: the second one wrote a second audit entry).
    """
    customer = Customer.objects.select_for_update().get(pk=address.customer_id)
    if not Address.objects.filter(pk=address.pk).delete()[0]:
        raise Address.DoesNotExist(f"Address {address.pk} was removed meanwhile.")
    label = str(address)
    update_fields = ["version", "updated_at"]
    if customer.default_billing_address_id == address.pk:
        customer.default_billing_address = None
        customer.country = ""
        update_fields += ["default_billing_address", "country"]
    if customer.default_shipping_address_id == address.pk:
        customer.default_shipping_address = None
        update_fields.append("default_shipping_address")
    customer.version += 1
    customer.updated_at = timezone.now()
    customer.save(update_fields=update_fields)
    audit_record(
        customer=customer,
        actor=actor,
        action="address_delete",
        changes={"address": [label, ""]},
        origin=origin,
    )


@dataclass(frozen=True)
class PhonesNormalized:
    """What phones_normalize did: rows rewritten, and rows whose number it could not read."""

    customers: int
    addresses: int
    unparseable: int


def phones_normalize(
    *, customer_model=Customer, address_model=Address, batch_size: int = 1000
) -> PhonesNormalized:
    """Store every customer's and address's phone in the one international format.

    For rows written before the forms and the API normalized phones (clients migration 0015
    runs it with its historical models). Set-based: each distinct number is parsed once and
    rewritten in one UPDATE per batch; a number that is no valid phone number (or whose
    international form would not fit the column) stays as it is and is counted. A changed
    customer gets its search text recomputed and `updated_at` moved, so API clients syncing
    with `updated_since` see the new form. No audit entry: the number itself is unchanged.
    """
    customers, unparseable_customers = _phones_normalize(
        customer_model, customer_model=customer_model, batch_size=batch_size
    )
    addresses, unparseable_addresses = _phones_normalize(
        address_model, customer_model=customer_model, batch_size=batch_size
    )
    return PhonesNormalized(
        customers=customers,
        addresses=addresses,
        unparseable=unparseable_customers + unparseable_addresses,
    )


def _phones_normalize(model, *, customer_model, batch_size: int) -> tuple[int, int]:
    """(rows rewritten, rows left unparseable) for one model's `phone` column."""
    max_length = model._meta.get_field("phone").max_length
    changes, unparseable = {}, 0
    numbers = (
        model.objects.exclude(phone="")
        .order_by()
        .values_list("phone")
        .annotate(rows=Count("pk"))
        .iterator(chunk_size=5000)
    )
    for phone, rows in numbers:
        number = phone_parse(phone)
        if number is None:
            unparseable += rows
            continue
        formatted = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
        if len(formatted) > max_length:
            unparseable += rows
        elif formatted != phone:
            changes[phone] = formatted
    olds = list(changes)
    rewritten = 0
    for start in range(0, len(olds), batch_size):
        batch = olds[start : start + batch_size]
        with transaction.atomic():
            if model is customer_model:
                rewritten += _customer_phones_rewrite(model, batch, changes)
            else:
                owners = model.objects.filter(phone__in=batch).values("customer_id")
                customer_model.objects.filter(pk__in=owners).update(updated_at=Now())
                rewritten += model.objects.filter(phone__in=batch).update(
                    phone=Case(*(When(phone=old, then=Value(changes[old])) for old in batch))
                )
    return rewritten, unparseable


def _customer_phones_rewrite(model, batch: list[str], changes: dict[str, str]) -> int:
    """Rewrite the locked customers whose phone is in `batch`, with their search text."""
    rows = (
        model.objects.select_for_update()
        .filter(phone__in=batch)
        .values_list("pk", "first_name", "last_name", "email", "phone")
    )
    now = timezone.now()
    customers = []
    for pk, first_name, last_name, email, phone in rows:
        new = changes[phone]
        search_text = customer_search_text(
            pk=pk, first_name=first_name, last_name=last_name, email=email, phone=new
        )
        customers.append(model(pk=pk, phone=new, search_text=search_text, updated_at=now))
    model.objects.bulk_update(customers, ["phone", "search_text", "updated_at"], batch_size=1000)
    return len(customers)
