"""Every change to the privacy records goes through here: erasure, consents, data archives,
the access log."""

import ipaddress
import logging
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import (
    CharField,
    Count,
    Exists,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.expressions import RawSQL
from django.db.models.functions import Cast, Coalesce, Concat
from django.utils import timezone
from django.utils.translation import gettext as _

from backoffice.client_ip import client_ip_address
from clients.models import (
    IS_CLIENT,
    IS_LEAD,
    Address,
    AuditAction,
    AuditEntry,
    AuditOrigin,
    Customer,
    Note,
)
from clients.services import audit_record
from notifications.models import Delivery, PushSubscription
from orders.models import Order
from privacy.archive import archive_zip
from privacy.models import (
    STAFF_SOURCES,
    AccessAction,
    AccessLogEntry,
    ArchiveStatus,
    Channel,
    ConsentRecord,
    ConsentSource,
    DataArchive,
    ErasureRequest,
    ErasureSource,
)
from privacy.registry import Erasure, registrations
from storefront.models import Launch

logger = logging.getLogger(__name__)

# An erased customer's email: unique (the column is), not deliverable (RFC 2606 .invalid).
ERASED_EMAIL_DOMAIN = "erased.invalid"


# From this many customers, PostgreSQL gets the ids as a temporary table (_temporary_id_set).
TEMPORARY_TABLE_FROM = 1000


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
        if connection.vendor == "postgresql" and len(id_list) >= TEMPORARY_TABLE_FROM:
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
            default_billing_address=None,
            default_shipping_address=None,
            # Nothing to search for: "#id" still finds the row (by its primary key), and an
            # empty text adds no trigram to the search indexes (a third of a sweep's time).
            search_text="",
            push_opt_in=False,
            push_opened=False,
            last_launch_source="",
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


def kept_data_expire(*, now=None) -> int:
    """Run every app's own retention (its registration's `expire`); returns the rows deleted."""
    now = now or timezone.now()
    return sum(r.expire(now) for r in registrations() if r.expire is not None)


# --- Consent ledger -------------------------------------------------------------------------

# The channels whose current state is denormalized on the customer (push's is push_opt_in,
# kept by the notifications app from the active subscriptions).
CONSENT_FIELDS = {Channel.EMAIL: "email_consent", Channel.SMS: "sms_consent"}


def consent_record(
    *,
    customer: Customer,
    channel: str,
    granted: bool,
    source: str,
    actor=None,
    wording: str = "",
    note: str = "",
    at=None,
) -> ConsentRecord:
    """Record a grant or withdrawal of an email or SMS consent and make it the current state.

    Staff (`actor`) must say how the customer said it (a staff source) and write a note.
    """
    channel = Channel(channel)
    if channel not in CONSENT_FIELDS:
        raise PrivacyError(_("Push consent follows the customer's browsers."))
    source = ConsentSource(source)
    if actor is not None:
        if source not in STAFF_SOURCES:
            raise PrivacyError(_("Say how the customer gave or withdrew the consent."))
        if not note.strip():
            raise PrivacyError(_("Write a note: it is the proof of the consent."))
    field = CONSENT_FIELDS[channel]
    with transaction.atomic():
        customer = Customer.objects.select_for_update().get(pk=customer.pk)
        if customer.erased_at is not None:
            raise PrivacyError(_("This customer's data is erased."))
        record = ConsentRecord.objects.create(
            customer=customer,
            channel=channel,
            granted=granted,
            at=at or timezone.now(),
            source=source,
            wording=wording.strip(),
            note=note.strip(),
            recorded_by=actor,
        )
        before = getattr(customer, field)
        if before != granted:
            Customer.objects.filter(pk=customer.pk).update(**{field: granted})
        audit_record(
            customer=customer,
            actor=actor,
            action=AuditAction.CONSENT,
            changes={field: [before, granted]},
            origin=AuditOrigin.STAFF if actor is not None else AuditOrigin.CUSTOMER,
        )
    return record


def consent_push_record(*, events, source: str, at) -> None:
    """Push consents, written by the notifications app as subscriptions start and end:
    `events` are (customer id, subscription id, granted)."""
    if not events:
        return
    ConsentRecord.objects.bulk_create(
        ConsentRecord(
            customer_id=customer_id,
            channel=Channel.PUSH,
            granted=granted,
            at=at,
            source=ConsentSource(source),
            subscription_id=subscription_id,
        )
        for customer_id, subscription_id, granted in events
    )


def _newest_consent(channel: str):
    newest = ConsentRecord.objects.filter(customer=OuterRef("pk"), channel=channel).order_by(
        "-at", "-id"
    )
    return Coalesce(Subquery(newest.values("granted")[:1]), Value(False))


def consent_state_refresh(*, customer_ids: list[int]) -> None:
    """Set these customers' email_consent and sms_consent from their newest records (after
    records were written in bulk, e.g. by an import; the caller holds the rows)."""
    if customer_ids:
        Customer.objects.filter(pk__in=customer_ids).update(
            **{field: _newest_consent(channel) for channel, field in CONSENT_FIELDS.items()}
        )


def consent_state_rebuild(*, check: bool) -> int:
    """Make email_consent and sms_consent the newest record of their channel; returns how
    many customers drifted (changing nothing with `check`)."""
    drifted = 0
    for channel, field in CONSENT_FIELDS.items():
        truth = _newest_consent(channel)
        wrong = Customer.objects.annotate(truth=truth).exclude(**{field: F("truth")})
        if check:
            drifted += wrong.count()
        else:
            with transaction.atomic():
                ids = list(wrong.values_list("pk", flat=True))
                drifted += Customer.objects.filter(pk__in=ids).update(**{field: truth})
    return drifted


# --- Data archives (access and portability) -------------------------------------------------


def archive_request(*, customer: Customer, actor) -> tuple[DataArchive, bool]:
    """Record an archive request; returns it and whether the worker should build it (a big
    customer) rather than the request itself."""
    if customer.erased_at is not None:
        raise PrivacyError(_("This customer's data is erased."))
    now = timezone.now()
    archive = DataArchive.objects.create(
        customer=customer,
        requested_by=actor,
        requested_at=now,
        expires_at=now + timedelta(hours=settings.PRIVACY_ARCHIVE_HOURS),
    )
    rows = (
        Order.objects.filter(customer=customer).count()
        + Note.objects.filter(customer=customer).count()
        + AuditEntry.objects.filter(customer=customer).count()
    )
    return archive, rows > settings.PRIVACY_ARCHIVE_BACKGROUND_ROWS


def archive_build(*, archive_id: int) -> DataArchive | None:
    """Build a requested archive (safe to run twice: a built one is left as it is)."""
    archive = DataArchive.objects.filter(pk=archive_id, status=ArchiveStatus.BUILDING).first()
    if archive is None:
        return None
    customer = Customer.objects.get(pk=archive.customer_id)
    try:
        content = archive_zip(customer)
    except Exception as exc:  # the requester sees that it failed; the log says why
        logger.exception("Data archive %s of customer %s failed", archive.pk, customer.pk)
        DataArchive.objects.filter(pk=archive.pk).update(
            status=ArchiveStatus.FAILED, error=type(exc).__name__
        )
        return archive
    now = timezone.now()
    DataArchive.objects.filter(pk=archive.pk, status=ArchiveStatus.BUILDING).update(
        status=ArchiveStatus.READY,
        content=content,
        size=len(content),
        # The time limit runs from when the archive can be downloaded.
        expires_at=now + timedelta(hours=settings.PRIVACY_ARCHIVE_HOURS),
    )
    return archive


def archive_take(*, archive_id: int, actor) -> bytes:
    """The archive's ZIP for its requester, once: its content is dropped as it is taken."""
    with transaction.atomic():
        archive = DataArchive.objects.select_for_update().filter(pk=archive_id).first()
        if archive is None or archive.requested_by_id != actor.pk:
            raise DataArchive.DoesNotExist
        content = None
        if archive.status == ArchiveStatus.READY and archive.expires_at <= timezone.now():
            archive.status = ArchiveStatus.EXPIRED
            archive.content = b""
            archive.save(update_fields=["status", "content"])
        elif archive.status == ArchiveStatus.READY:
            content = bytes(archive.content)
            archive.status = ArchiveStatus.DOWNLOADED
            archive.downloaded_at = timezone.now()
            archive.content = b""
            archive.save(update_fields=["status", "downloaded_at", "content"])
    if content is None and archive.status == ArchiveStatus.BUILDING:
        raise PrivacyError(_("The archive is not ready yet."))
    if content is None:
        raise PrivacyError(_("This archive cannot be downloaded any more: request a new one."))
    return content


def archives_expire(*, now=None) -> int:
    """Drop the content of archives not downloaded in time; returns how many."""
    now = now or timezone.now()
    return DataArchive.objects.filter(status=ArchiveStatus.READY, expires_at__lte=now).update(
        status=ArchiveStatus.EXPIRED, content=b""
    )


# --- Retention ------------------------------------------------------------------------------


def retention_cutoff(*, now=None):
    """Customers without contact since before this time are past the retention period."""
    return (now or timezone.now()) - timedelta(days=settings.PRIVACY_RETENTION_DAYS)


def retention_candidates(*, cutoff) -> QuerySet:
    """Customers (not erased) without any contact since `cutoff`: created before it, and no
    order (of any status), app launch, push subscription, click on a push, or change made by
    the customer through the shop's API since. Leads have no finalized order; clients are
    inactive since their last order. One statement, anti-joins on indexed columns."""
    since = {"customer": OuterRef("pk")}
    return Customer.objects.filter(erased_at=None, created_at__lt=cutoff).exclude(
        Exists(Order.objects.filter(**since, placed_at__gte=cutoff))
        | Exists(Launch.objects.filter(**since, occurred_at__gte=cutoff))
        | Exists(PushSubscription.objects.filter(**since, created_at__gte=cutoff))
        | Exists(
            Delivery.objects.filter(subscription__customer=OuterRef("pk"), clicked_at__gte=cutoff)
        )
        | Exists(
            AuditEntry.objects.filter(**since, origin=AuditOrigin.CUSTOMER, at__gte=cutoff).exclude(
                action__in=ORDER_AUDIT_ACTIONS
            )
        )
    )


# An order's own audit entries are recorded when the shop reports it, which may be long after
# it was placed (an import, a late API call): orders count by their own date above.
ORDER_AUDIT_ACTIONS = (
    AuditAction.ORDER_PLACE,
    AuditAction.ORDER_PAY,
    AuditAction.ORDER_FULFIL,
    AuditAction.ORDER_CANCEL,
    AuditAction.ORDER_REFUND,
    AuditAction.ORDER_IMPORT,
)


def retention_preview(*, cutoff) -> dict:
    """How many leads and clients the retention sweep would erase at `cutoff`."""
    counts = retention_candidates(cutoff=cutoff).aggregate(
        leads=Count("pk", filter=IS_LEAD), clients=Count("pk", filter=IS_CLIENT)
    )
    return {"cutoff": cutoff, **counts}


def retention_sweep(*, cutoff) -> int:
    """Erase every customer past the retention period at `cutoff`; returns how many."""
    if cutoff > retention_cutoff():
        raise PrivacyError(_("The retention period has not passed for this date."))
    return customers_erase(customers=retention_candidates(cutoff=cutoff))


def retention_auto(*, now=None) -> int:
    """The daily run's sweep, when the shop turned PRIVACY_RETENTION_AUTO on."""
    if not settings.PRIVACY_RETENTION_AUTO:
        return 0
    return retention_sweep(cutoff=retention_cutoff(now=now))
