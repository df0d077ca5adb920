"""Every change to the privacy records goes through here: erasure, consents, data archives,
the access log."""

import ipaddress
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import CharField, F, Q, QuerySet, Value
from django.db.models.expressions import RawSQL
from django.db.models.functions import Cast, Concat
from django.utils import timezone
from django.utils.translation import gettext as _

from backoffice.client_ip import client_ip_address
from clients.models import Address, AuditAction, AuditEntry, AuditOrigin, Customer
from clients.services import audit_record
from privacy.models import AccessAction, AccessLogEntry, ErasureRequest, ErasureSource
from privacy.registry import Erasure, registrations

# An erased customer's email: unique (the column is), not deliverable (RFC 2606 .invalid).
ERASED_EMAIL_DOMAIN = "erased.invalid"


class PrivacyError(Exception):
    """A privacy action that cannot be done (the message says why)."""


# --- Erasure --------------------------------------------------------------------------------


def customer_personal_values(customer: Customer) -> list[str]:
    """The customer's personal values, for hooks that look for them in free text."""
    values = [
        customer.email,
        customer.first_name,
        customer.last_name,
        customer.full_name,
        customer.phone,
        customer.external_id,
    ]
    for address in Address.objects.filter(customer=customer):
        values += [address.name, address.company, address.line1, address.line2, address.phone]
    return sorted({v for v in values if v and v.strip()}, key=len, reverse=True)


def customers_erase(*, customers: QuerySet, values: dict | None = None) -> int:
    """Anonymize these customers (a queryset): every registered app's data, then the row.

    Orders keep their amounts, dates and statuses, so the statistics stay exact. Set-based:
    a retention sweep erases hundreds of thousands at once. Returns how many were erased.
    """
    now = timezone.now()
    ids = customers.filter(erased_at=None).values("pk")
    with transaction.atomic():
        # Materialized first: the hooks change what the filter would select.
        id_list = list(ids.values_list("pk", flat=True))
        if not id_list:
            return 0
        chosen = Customer.objects.filter(pk__in=id_list).values("pk")
        if connection.vendor == "postgresql" and len(id_list) > 1000:
            chosen = _temporary_id_set(id_list)
        erasure = Erasure(
            customers=chosen,
            at=now,
            keep_billing_snapshot=settings.PRIVACY_KEEP_BILLING_SNAPSHOT,
            values=values or {},
        )
        for registration in registrations():
            registration.erase(erasure)
        email = Concat(Value("erased-"), Cast("pk", CharField()), Value("@" + ERASED_EMAIL_DOMAIN))
        Customer.objects.filter(pk__in=chosen).update(
            email=email,
            first_name="",
            last_name="",
            phone="",
            external_id="",
            language="",
            country="",
            search_text=Concat(Cast("pk", CharField()), Value(" "), email),
            push_opt_in=False,
            email_consent=False,
            sms_consent=False,
            erased_at=now,
            updated_at=now,
            version=F("version") + 1,
        )
        _audit_erased(chosen, now)
    return len(id_list)


def _temporary_id_set(id_list: list[int]) -> QuerySet:
    """PostgreSQL: the ids as a table the hooks' statements join (an IN list of 100,000
    parameters would be parsed by every statement)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMPORARY TABLE IF NOT EXISTS privacy_erasing (id bigint PRIMARY KEY) "
            "ON COMMIT DROP"
        )
        cursor.execute("TRUNCATE privacy_erasing")
        cursor.execute("INSERT INTO privacy_erasing (id) SELECT unnest(%s::bigint[])", [id_list])
        cursor.execute("ANALYZE privacy_erasing")
    return Customer.objects.filter(pk__in=RawSQL("SELECT id FROM privacy_erasing", [])).values("pk")


def _audit_erased(chosen: QuerySet, now) -> None:
    """One "Personal data erased" entry in each erased customer's history, in one statement."""
    select, params = Customer.objects.filter(pk__in=chosen).values("pk").query.sql_with_params()
    table = Customer._meta.db_table
    audit = AuditEntry._meta.db_table
    json = "%s::jsonb" if connection.vendor == "postgresql" else "%s"
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {audit} (customer_id, actor_id, at, action, origin, changes) "
            f"SELECT {table}.id, NULL, %s, %s, %s, {json} FROM {table} "
            f"WHERE {table}.id IN ({select})",
            [now, AuditAction.ERASURE_DONE, AuditOrigin.STAFF, "{}", *params],
        )


def erasure_request(*, customer: Customer, actor, reason: str) -> ErasureRequest:
    """Ask for a customer's erasure, carried out after PRIVACY_ERASURE_GRACE_DAYS."""
    reason = reason.strip()
    if not reason:
        raise PrivacyError(_("Give the reason for the erasure."))
    with transaction.atomic():
        customer = Customer.objects.select_for_update().get(pk=customer.pk)
        if customer.erased_at is not None:
            raise PrivacyError(_("This customer's data is already erased."))
        if ErasureRequest.objects.filter(
            customer=customer, cancelled_at=None, done_at=None
        ).exists():
            raise PrivacyError(_("An erasure of this customer is already planned."))
        now = timezone.now()
        request = ErasureRequest.objects.create(
            customer=customer,
            source=ErasureSource.REQUEST,
            reason=reason,
            requested_at=now,
            requested_by=actor,
            due_at=now + timedelta(days=settings.PRIVACY_ERASURE_GRACE_DAYS),
        )
        audit_record(
            customer=customer,
            actor=actor,
            action=AuditAction.ERASURE_REQUEST,
            changes={"due_at": ["", request.due_at.isoformat()]},
        )
    return request


def erasure_cancel(*, erasure: ErasureRequest, actor) -> ErasureRequest:
    """Cancel a planned erasure (before its grace period ends)."""
    with transaction.atomic():
        erasure = ErasureRequest.objects.select_for_update().get(pk=erasure.pk)
        if not erasure.is_pending:
            raise PrivacyError(_("This erasure is no longer planned."))
        erasure.cancelled_at = timezone.now()
        erasure.cancelled_by = actor
        erasure.save(update_fields=["cancelled_at", "cancelled_by"])
        audit_record(
            customer=erasure.customer,
            actor=actor,
            action=AuditAction.ERASURE_CANCEL,
            changes={"due_at": [erasure.due_at.isoformat(), ""]},
        )
    return erasure


def erasures_carry_out(*, now=None) -> int:
    """Carry out the erasures whose grace period has ended; returns how many customers."""
    now = now or timezone.now()
    done = 0
    due = ErasureRequest.objects.filter(cancelled_at=None, done_at=None, due_at__lte=now)
    for pk in due.order_by("due_at", "pk").values_list("pk", flat=True):
        done += erasure_carry_out(erasure_id=pk, now=now)
    return done


def erasure_carry_out(*, erasure_id: int, now=None) -> int:
    """Carry out one erasure if it is still due (safe to run twice)."""
    now = now or timezone.now()
    with transaction.atomic():
        erasure = (
            ErasureRequest.objects.select_for_update()
            .filter(pk=erasure_id, cancelled_at=None, done_at=None, due_at__lte=now)
            .first()
        )
        if erasure is None:
            return 0
        customer = Customer.objects.select_for_update().get(pk=erasure.customer_id)
        values = {customer.pk: customer_personal_values(customer)}
        erased = customers_erase(customers=Customer.objects.filter(pk=customer.pk), values=values)
        ErasureRequest.objects.filter(pk=erasure.pk).update(done_at=now)
    return erased


def pending_erasures() -> QuerySet:
    return ErasureRequest.objects.filter(Q(cancelled_at=None) & Q(done_at=None))


# --- Access log -----------------------------------------------------------------------------


def access_record(
    request, *, action: str, customer_id: int | None = None, detail: dict | None = None
) -> AccessLogEntry:
    """Log who read, exported or changed what about customers, from where (append-only).

    `detail` holds ids and counts only (never names or searched text): the log is kept a
    year and erasure does not touch it.
    """
    user = request.user
    ip = client_ip_address(request)
    try:
        ipaddress.ip_address(ip)
    except ValueError:
        ip = None
    return AccessLogEntry.objects.create(
        at=timezone.now(),
        user_id=user.pk if user.is_authenticated else None,
        username=user.get_username() if user.is_authenticated else "",
        action=AccessAction(action),
        customer_id=customer_id,
        ip=ip,
        path=request.path[:300],
        detail=detail or {},
    )


def access_log_prune(*, now=None) -> int:
    """Delete access log entries older than PRIVACY_ACCESS_LOG_DAYS; returns how many."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.PRIVACY_ACCESS_LOG_DAYS)
    deleted, _ = AccessLogEntry.objects.filter(at__lt=cutoff).delete()
    return deleted
