"""The personal data the clients app holds: addresses, notes, the change history.

The customer row itself is anonymized by privacy.services.customers_erase, after every hook.
"""

from clients.models import Address, AuditEntry, Customer, Note
from privacy.registry import Erasure, register
from privacy.serialize import plain, rows


def erase(erasure: Erasure) -> None:
    # Set-based deletes (_raw_delete skips the collector, which would read every row first).
    # The customers' default addresses point at these rows until customers_erase sets them to
    # NULL in the same transaction: the foreign keys are checked at commit (Django creates
    # them deferred), and a second UPDATE of every customer row would double the sweep's cost.
    Address.objects.filter(customer__in=erasure.customers)._raw_delete(Address.objects.db)
    Note.objects.filter(customer__in=erasure.customers)._raw_delete(Note.objects.db)
    # The history keeps what happened when, by whom; the values changed are personal.
    AuditEntry.objects.filter(customer__in=erasure.customers).update(changes={})


def export(customer: Customer) -> dict[str, list[dict]]:
    profile = {
        "id": customer.pk,
        "email": customer.email,
        "first_name": customer.first_name,
        "last_name": customer.last_name,
        "phone": customer.phone,
        "language": customer.language,
        "external_id": customer.external_id,
        "created_at": customer.created_at,
        "updated_at": customer.updated_at,
        "orders_count": customer.orders_count,
        "total_spent": customer.total_spent,
        "first_order_at": customer.first_order_at,
        "last_order_at": customer.last_order_at,
        "push_opt_in": customer.push_opt_in,
        "email_consent": customer.email_consent,
        "sms_consent": customer.sms_consent,
        "default_billing_address_id": customer.default_billing_address_id,
        "default_shipping_address_id": customer.default_shipping_address_id,
    }
    return {
        "profile": [{name: plain(value) for name, value in profile.items()}],
        "addresses": rows(
            Address.objects.filter(customer=customer).order_by("pk"),
            "id",
            "name",
            "company",
            "line1",
            "line2",
            "postal_code",
            "city",
            "region",
            "country",
            "phone",
        ),
        "notes": rows(
            Note.objects.filter(customer=customer).order_by("created_at", "pk"),
            "id",
            "created_at",
            "text",
            author="author__username",
        ),
        "change_history": rows(
            AuditEntry.objects.filter(customer=customer).order_by("at", "pk"),
            "id",
            "at",
            "action",
            "origin",
            "changes",
            actor="actor__username",
        ),
    }


register("clients", models=(Customer, Address, Note, AuditEntry), erase=erase, export=export)
