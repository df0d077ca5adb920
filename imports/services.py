"""Every write of an import: the upload, the dry run, applying, cancelling.

The dry run and applying decide what a row does with the same code (`_customer_plans`,
`_order_items`), so what the dry run announces is what applying does, given the same
database. Applying re-decides each batch at its own time under the customers' row locks (the
database may have changed since the dry run), writes it in one transaction together with
the job's cursor, and so can stop anywhere and resume: every row before the cursor is fully
applied, none after it is. A row applied twice changes nothing the second time (what is
already stored is `unchanged`), which makes a whole import idempotent.

Orders go through the storefront API's bulk import code (orders.services: order_draft,
order_import_check, orders_import), which keeps every customer's statistics exact; a dry run
of an order file runs it in a transaction that is rolled back.
"""

import itertools
import json
import logging
import queue
import threading
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from enum import Enum
from functools import partial

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import connection, models, transaction
from django.db.models import BooleanField, F, Func, JSONField, OuterRef, Q, Subquery
from django.db.models.expressions import DatabaseDefault
from django.db.models.functions import Lower
from django.utils import timezone, translation

from clients.models import Address, AuditAction, AuditEntry, AuditOrigin, Customer
from clients.search import customer_search_text
from clients.selectors import customers_with_external_id
from imports import formats, rows
from imports.models import (
    ConsentChannel,
    ImportFormat,
    ImportJob,
    ImportKind,
    ImportRow,
    ImportStatus,
    RowAction,
    waiting_imports,
)
from imports.reading import Broken, UnreadableFile, read_rows, sniff
from orders.services import (
    ImportedOrder,
    LineInput,
    OrderError,
    order_draft,
    order_import_check,
    orders_import,
)
from privacy.models import ConsentRecord, ConsentSource
from privacy.services import CONSENT_FIELDS as CONSENT_STATE

logger = logging.getLogger(__name__)

BATCH = 1000
# How many refused rows and update diffs a job keeps for its page (the counts are exact).
# A worker that has not moved a job for this long is taken as dead: the job may be resumed.
STALE_AFTER = timedelta(minutes=5)
CONTACT = ("first_name", "last_name", "phone", "language")
ADDRESS_KEYS = ("company", "line1", "line2", "postal_code", "city", "region", "country")
IMPORTED_ORDER_LINE = "Imported order"


class TooLarge(Exception):
    """The file is over IMPORT_MAX_BYTES."""


class NotAllowed(Exception):
    """The job is not in a state that allows this (applying a job already applied...)."""


def max_bytes() -> int:
    return int(getattr(settings, "IMPORT_MAX_BYTES", 200 * 1024 * 1024))


# --- Upload and mapping ----------------------------------------------------------------------


@transaction.atomic
def import_upload(*, upload: UploadedFile, kind: str, actor) -> ImportJob:
    """Store an uploaded file and read its header: the format is recognized, or the job waits
    for the user to choose the columns. Raises TooLarge or UnreadableFile (nothing kept)."""
    if upload.size > max_bytes():
        raise TooLarge()
    layout = sniff(upload)
    upload.seek(0)
    iterator = read_rows(upload, layout)
    try:
        header = next(iterator, None)
        header = header[1] if header else None
        if header is None or isinstance(header, Broken):
            raise UnreadableFile(header.reason if header else "")
        headers = [str(h).strip()[:200] for h in header]
        if len(headers) < 1 or not any(headers):
            raise UnreadableFile("")
        fmt, mapping = formats.recognize(kind, headers)
        if fmt == ImportFormat.OURS:  # our export writes 31/12/2025 in French, ISO in English
            seen, orders = False, {"dmy"}
        else:
            seen, orders = _date_orders(iterator, mapping)
    finally:
        iterator.close()
    upload.seek(0)
    job = ImportJob(
        kind=kind,
        file_name=(upload.name or "file")[-255:],
        file_size=upload.size,
        created_by=actor,
        created_at=timezone.now(),
        format=fmt,
        encoding=layout.encoding,
        delimiter=layout.delimiter,
        headers=headers,
        mapping=mapping,
        status=ImportStatus.MAPPING,
    )
    if len(orders) == 1:
        job.date_order = orders.pop()
    job.file.save(job.file_name, upload, save=False)
    job.save()
    # Dates that read either way (3/5/2024: a spreadsheet rewrote the platform's dates) are
    # for the user to say, as the columns of a file of no known format are.
    ambiguous = seen and len(orders) > 1
    if fmt != ImportFormat.MANUAL and not missing_fields(job) and not ambiguous:
        job.status = ImportStatus.CHECKING
        job.save(update_fields=["status"])
    return job


# How many rows the upload reads to tell how the file writes its dates.
DATE_SAMPLE = 1000


def _date_orders(iterator, mapping: list[str]) -> tuple[bool, set[str]]:
    """rows.date_orders of the date columns of the file's first DATE_SAMPLE rows."""
    columns = [i for i, field in enumerate(mapping) if field in rows.DATE_FIELDS]
    cells = (
        cells[i]
        for _line, cells in itertools.islice(iterator, DATE_SAMPLE)
        if not isinstance(cells, Broken)
        for i in columns
        if i < len(cells)
    )
    return rows.date_orders(cells) if columns else (False, {"dmy", "mdy"})


def missing_fields(job: ImportJob, mapping: list[str] | None = None) -> list[str]:
    chosen = set(job.mapping if mapping is None else mapping)
    needed = formats.REQUIRED[ImportKind(job.kind)]
    missing = [f for f in needed if f not in chosen]
    if job.kind == ImportKind.ORDERS and not {"email", "customer_external_id"} & chosen:
        missing.append("email")
    return missing


@transaction.atomic
def import_set_mapping(*, job: ImportJob, mapping: list[str], date_order: str) -> ImportJob:
    """Choose the field of each column (and how dates are read), then check the file again."""
    job = ImportJob.objects.select_for_update().get(pk=job.pk)
    if job.status not in (ImportStatus.MAPPING, ImportStatus.CHECKED, ImportStatus.FAILED):
        raise NotAllowed()
    if job.status == ImportStatus.FAILED and job.applied_rows:
        raise NotAllowed()
    known = formats.fields_of(job.kind)
    if len(mapping) != len(job.headers) or any(f and f not in known for f in mapping):
        raise ValueError("The mapping does not fit the file's columns.")
    chosen = [f for f in mapping if f]
    if len(chosen) != len(set(chosen)):
        raise ValueError("A field is chosen for two columns.")
    job.mapping = mapping
    job.date_order = date_order if date_order in ("dmy", "mdy") else "dmy"
    job.status = ImportStatus.CHECKING
    job.checked_rows = 0
    job.counts = {}
    job.error = ""
    job.save()
    return job


@transaction.atomic
def import_cancel(*, job: ImportJob) -> ImportJob:
    """Drop an import that was not applied (or stop one being checked); its file is deleted."""
    job = ImportJob.objects.select_for_update().get(pk=job.pk)
    if job.status in (ImportStatus.APPLYING, ImportStatus.APPLIED, ImportStatus.CANCELLED):
        raise NotAllowed()
    if job.status == ImportStatus.FAILED and job.applied_rows:
        raise NotAllowed()  # partly applied: it can only be resumed
    _cancel(job, now=timezone.now())
    return job


def _cancel(job: ImportJob, *, now: datetime, abandoned: bool = False) -> int:
    """Cancel a job locked by the caller: its rows deleted, its file once committed; returns
    how many rows went."""
    job.status = ImportStatus.CANCELLED
    job.finished_at = now
    job.abandoned = abandoned
    job.save(update_fields=["status", "finished_at", "abandoned"])
    deleted = ImportRow.objects.filter(job=job).delete()[0]
    name = job.file.name
    transaction.on_commit(lambda: _delete_file(name))
    return deleted


def import_abandoned_expire(*, now: datetime | None = None) -> int:
    """Cancel the imports left waiting (checked but neither applied nor cancelled, columns never
    chosen, stopped before applying a row) IMPORT_ABANDONED_DAYS after they were last touched:
    their uploaded file and checked rows (personal data) are deleted, the job stays, marked
    abandoned. Returns how many rows went. Run by the daily privacy task (imports/privacy.py);
    one transaction per import."""
    now = now or timezone.now()
    waiting = waiting_imports(now - timedelta(days=settings.IMPORT_ABANDONED_DAYS))
    deleted = 0
    for pk in list(ImportJob.objects.filter(waiting).values_list("pk", flat=True)):
        with transaction.atomic():
            # Locked and checked again: applied, cancelled or touched since the list was read.
            job = ImportJob.objects.select_for_update().filter(waiting, pk=pk).first()
            if job is not None:
                deleted += _cancel(job, now=now, abandoned=True)
    return deleted


def import_rows_expire(*, now: datetime | None = None) -> int:
    """Delete the checked rows of the imports applied more than IMPORT_RETENTION_DAYS ago (the
    job, its counts and the customers' audit entries stay); returns how many rows went. Run
    by the daily privacy task (imports/privacy.py); one transaction per import."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.IMPORT_RETENTION_DAYS)
    expired = ImportJob.objects.filter(
        status=ImportStatus.APPLIED, finished_at__lt=cutoff, rows_deleted_at=None
    ).values_list("pk", flat=True)
    deleted = 0
    for pk in list(expired):
        with transaction.atomic():
            deleted += ImportRow.objects.filter(job_id=pk).delete()[0]
            ImportJob.objects.filter(pk=pk).update(rows_deleted_at=now)
    return deleted


def _delete_file(name: str) -> None:
    from django.core.files.storage import default_storage

    try:
        default_storage.delete(name)
    except OSError:
        logger.warning("Could not delete the import file %s", name)


@transaction.atomic
def import_start_apply(*, job: ImportJob, actor) -> ImportJob:
    """Mark a checked import (or one that stopped midway) to be applied by the worker."""
    job = ImportJob.objects.select_for_update().get(pk=job.pk)
    resumable = job.status == ImportStatus.FAILED and job.checked_at is not None
    stale = job.status == ImportStatus.APPLYING and is_stale(job)
    if job.status != ImportStatus.CHECKED and not resumable and not stale:
        raise NotAllowed()
    if job.has_no_rows:
        raise NotAllowed()  # a file with a header and no row: nothing to apply
    job.status = ImportStatus.APPLYING
    job.applied_by = job.applied_by or actor
    job.apply_started_at = job.apply_started_at or timezone.now()
    job.heartbeat_at = timezone.now()
    job.error = ""
    job.save()
    return job


def is_stale(job: ImportJob) -> bool:
    beat = job.heartbeat_at or job.created_at
    return job.is_running and beat < timezone.now() - STALE_AFTER


@transaction.atomic
def import_restart_check(*, job: ImportJob) -> ImportJob:
    """A dry run whose worker died starts again."""
    job = ImportJob.objects.select_for_update().get(pk=job.pk)
    if not (job.status == ImportStatus.CHECKING and is_stale(job)) and not (
        job.status == ImportStatus.FAILED and job.checked_at is None
    ):
        raise NotAllowed()
    job.status = ImportStatus.CHECKING
    job.heartbeat_at = timezone.now()
    job.error = ""
    job.save(update_fields=["status", "heartbeat_at", "error"])
    return job


# --- Reading the stored file ------------------------------------------------------------------


@dataclass
class _Read:
    ordinal: int
    line: int
    values: dict | None = None
    refused: rows.Refused | None = None
    # Customer rows: cells the checks refused or normalized, to settle against the stored
    # customer (rows.CustomerRow); the dry run's only, never stored.
    as_read: dict = field(default_factory=dict)
    refusals: dict = field(default_factory=dict)
    notes: dict = field(default_factory=dict)


def _file_rows(job: ImportJob):
    """Every data row of the job's file, read into values (or refused), in order."""
    from imports.reading import Layout

    layout = Layout(job.encoding, job.delimiter)
    comma_decimal = job.delimiter == ";" or job.encoding == "utf-8-sig"
    at = [job.mapping.index(f) if f in job.mapping else None for f in ("number", "total")]
    previous = ("", "")
    with job.file.open("rb") as binary:
        iterator = read_rows(binary, layout)
        next(iterator, None)  # the header
        for ordinal, (line, cells) in enumerate(iterator, start=1):
            read = _Read(ordinal, line)
            if isinstance(cells, Broken):
                # A code worded when shown, in the language of whoever reads the page.
                read.refused = rows.Refused(cells.code or "broken", cells.value or cells.reason)
            else:
                try:
                    if job.kind == ImportKind.ORDERS:
                        before = previous
                        previous = tuple(
                            str(cells[i]).strip() if i is not None and i < len(cells) else ""
                            for i in at
                        )
                        read.values = rows.order_row(
                            job.mapping,
                            cells,
                            date_order=job.date_order,
                            comma_decimal=comma_decimal,
                            previous=before,
                        )
                    else:
                        row = rows.customer_row(job.mapping, cells, date_order=job.date_order)
                        read.values, read.as_read, read.refusals, read.notes = (
                            row.values,
                            row.as_read,
                            row.refusals,
                            row.notes,
                        )
                except rows.Refused as refused:
                    read.refused = refused
            yield read


def _read_ahead(batches, depth: int = 2):
    """The items of `batches`, produced by a thread of their own up to `depth` ahead: reading
    and checking the next rows of the file (Python) goes on while PostgreSQL works on the
    current batch (the GIL is released while waiting for it), so on two cores the dry run
    takes about the larger of the two rather than their sum. Memory stays bounded: at most
    `depth` batches wait. An exception of the reader is raised here, in the caller."""
    waiting: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    end = object()
    language = translation.get_language()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                waiting.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce():
        translation.activate(language)  # the refusals' words, as the caller's thread has them
        try:
            with closing(batches):
                for item in batches:
                    if not put(item):
                        return
            put(end)
        except BaseException as error:  # handed to the caller, which raises it
            put(error)

    thread = threading.Thread(target=produce, name="import-reader", daemon=True)
    thread.start()
    try:
        while (item := waiting.get()) is not end:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


def _batches(iterable, size=BATCH):
    batch = []
    for item in iterable:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


# --- Deciding what a customer row does (dry run and apply) ------------------------------------


@dataclass
class _Plan:
    action: str
    customer: Customer | None = None
    changes: dict = field(default_factory=dict)
    refused: rows.Refused | None = None


def _address_values(address: Address | None) -> dict:
    if address is None:
        return {}
    return {key: getattr(address, key) for key in ADDRESS_KEYS}


def _address_text(values: dict) -> str:
    return ", ".join(
        values.get(k, "") for k in ("line1", "postal_code", "city", "country") if values.get(k)
    )


def _same_address(one: dict, other: dict) -> bool:
    """Whether two addresses of a row are the same address: their normalized parts, those the
    file has columns for in both, are equal (WooCommerce has no shipping company column)."""
    keys = [k for k in ADDRESS_KEYS if k in one and k in other]
    return bool(keys) and all(_same(one[k], other[k], k) for k in keys)


def _customer_plans(reads: list[_Read], *, lock: bool) -> dict[int, _Plan]:
    """What each (valid) row of a batch does, against the database as it is now."""
    valid = [r for r in reads if r.values is not None]
    emails = {r.values["email"].lower() for r in valid}
    external = {r.values["external_id"] for r in valid if r.values.get("external_id")}
    # `external_id <> ''` lets PostgreSQL use the partial unique index for any number of ids.
    matching = _among("email_key", emails, "text", Lower("email"))
    if external:
        matching |= _among("external_id", external, "text") & ~Q(external_id="")
    matched = Customer.objects.alias(email_key=Lower("email")).filter(matching)
    if lock:
        # Row locks in id order (as the order services take them): no deadlock between two
        # imports, or an import and the API, touching the same customers.
        matched = matched.select_for_update(no_key=True).order_by("pk")
    ids = list(matched.values_list("pk", flat=True))
    found = list(
        Customer.objects.select_related("default_billing_address", "default_shipping_address")
        .filter(_among("pk", ids, "bigint"))
        .annotate(**_NEWEST_CONSENTS)
        .order_by("pk")
    )
    by_email = {c.email.lower(): c for c in found}
    by_external = {c.external_id: c for c in found if c.external_id}
    plans, claimed = {}, {}
    for read in valid:
        values = read.values
        customer = by_external.get(values.get("external_id", "")) or by_email.get(
            values["email"].lower()
        )
        refused = _settle(read, customer)
        if refused is not None:
            plans[read.ordinal] = _Plan(RowAction.REFUSED, refused=refused)
            continue
        if customer is None:
            plans[read.ordinal] = _Plan(RowAction.CREATE)
            continue
        if customer.pk in claimed:
            plans[read.ordinal] = _Plan(
                RowAction.REFUSED, refused=rows.Refused("duplicate", claimed[customer.pk])
            )
            continue
        claimed[customer.pk] = read.line
        theirs = values.get("external_id")
        if theirs and customer.external_id and customer.external_id != theirs:
            plans[read.ordinal] = _Plan(
                RowAction.REFUSED, refused=rows.Refused("external_id_taken", customer.external_id)
            )
            continue
        changes = _changes(customer, values)
        plans[read.ordinal] = _Plan(
            RowAction.UPDATE if changes else RowAction.UNCHANGED, customer, changes
        )
    return plans


class _AnyOf(Func):
    """`expression = ANY(array)` (PostgreSQL): many values in one parameter."""

    output_field = BooleanField()

    def __init__(self, expression, values: list, kind: str):
        super().__init__(expression)
        self.values, self.kind = values, kind

    def as_sql(self, compiler, connection, **extra):
        sql, params = compiler.compile(self.source_expressions[0])
        return f"{sql} = ANY(%s::{self.kind}[])", [*params, self.values]


def _among(field: str, values, kind: str, expression=None) -> Q:
    """`field` is one of `values`: on PostgreSQL `= ANY(one array parameter)` (psycopg reads
    a statement's placeholders one by one: a thousand of them cost more than the query, and
    `IN (SELECT unnest(…))` OR-ed with another filter makes a sequential scan), elsewhere
    `IN (…)`."""
    if connection.vendor == "postgresql":
        return Q(_AnyOf(expression or F(field), sorted(values), kind))
    return Q(**{f"{field}__in": sorted(values)})


def _settle(read: _Read, customer: Customer | None) -> rows.Refused | None:
    """Settle the cells the checks refused or normalized against the customer the row names:
    a cell equal to what the customer already has is left alone (the field is not imported:
    unchanged, never refused nor noted, even when the stored value would no longer pass the
    checks); the first refusal left refuses the row."""
    if customer is not None:
        for name, cell in read.as_read.items():
            if _stored_equals(customer, name, cell):
                read.refusals.pop(name, None)
                read.notes.pop(name, None)
                if name != "email":  # the key: kept, and never changed by an update
                    read.values.pop(name, None)
                if name == "phone":
                    read.values.pop("phone_variants", None)
    if read.refusals:
        code, value = next(iter(read.refusals.values()))
        return rows.Refused(code, value)
    return None


def _stored_equals(customer: Customer, name: str, cell) -> bool:
    if name == "email":
        return customer.email.strip().lower() == cell.lower()
    if name.endswith("_address"):
        stored = _address_values(getattr(customer, f"default_{name}"))
        return bool(stored) and all(_same(stored[k], v, k) for k, v in cell.items())
    return _same(getattr(customer, name), cell)


def _same(stored: str, imported: str, part: str = "") -> bool:
    """Whether an imported value is the stored one: cells are read without the spaces around
    them (so a stored value with some is still the same), country codes in any case."""
    stored = (stored or "").strip()
    return stored.casefold() == imported.casefold() if part == "country" else stored == imported


def _day(moment: datetime):
    return timezone.localtime(moment).date()


def _changes(customer: Customer, values: dict) -> dict:
    """{field: [stored, imported]} for what the row changes; the email never changes."""
    changes = {}
    for name in CONTACT:
        if name in values and not _same(getattr(customer, name), values[name]):
            changes[name] = [getattr(customer, name), values[name]]
    if values.get("external_id") and not customer.external_id:
        changes["external_id"] = ["", values["external_id"]]
    created = values.get("created_at")
    if created and _day(datetime.fromisoformat(created)) < _day(customer.created_at):
        # The platform's sign-up date, a day before the one stored or earlier (the customer
        # reached the back office later, by the API or another file): "Customer since" moves
        # back, never forward. Compared by the shop's day, as the pages show it: a file that
        # writes it to the minute or to the day (ours, exported) is the same date.
        changes["created_at"] = [customer.created_at.isoformat(), created]
    for kind in ("billing", "shipping"):
        wanted = values.get(f"{kind}_address")
        if not wanted:
            continue
        stored = _address_values(getattr(customer, f"default_{kind}_address"))
        # Only the parts the file has columns for: ours has no company nor region.
        if not all(_same(stored.get(k, ""), wanted[k], k) for k in ADDRESS_KEYS if k in wanted):
            changes[f"default_{kind}_address"] = [_address_text(stored), _address_text(wanted)]
    if (
        "default_billing_address" in changes
        and not values.get("shipping_address")
        and customer.default_shipping_address_id == customer.default_billing_address_id
    ):
        # A file with one address (Shopify's "Default Address") made it both defaults: a new
        # one replaces both (the shipping default was left on the old address).
        changes["default_shipping_address"] = [
            changes["default_billing_address"][0],
            changes["default_billing_address"][1],
        ]
    for channel in ConsentChannel.values:
        granted = values.get(f"{channel}_consent")
        if granted is None:
            continue
        before = getattr(customer, f"newest_{channel}_consent")
        if before is None:
            # No record: the customer's state is what there is to change. A "no" from
            # someone who never gave consent withdraws nothing (no record of a withdrawal).
            before = getattr(customer, CONSENT_STATE[channel])
            if not before and not granted:
                continue
        if before != granted:
            changes[f"{channel}_consent"] = [before, granted]
    return changes


def _newest_consent(channel: str, field: str) -> Subquery:
    """A field of the customer's newest record of this channel in the privacy app's consent
    ledger (None without one). One subquery per customer, read from the ledger's (customer,
    at, id) index whatever PostgreSQL's statistics say: a filter on a batch's customers all at
    once was planned, on a ledger the import itself was filling and never analyzed
    (autovacuum off, or not yet run), as a scan of the whole ledger at every batch: 45 s of
    PostgreSQL's CPU for 100,000 rows, a quadratic apply."""
    newest = ConsentRecord.objects.filter(customer=OuterRef("pk"), channel=channel)
    return Subquery(newest.order_by("-at", "-id").values(field)[:1])


# What a batch's matched customers are read with: for each channel, the granted state and
# time of their newest consent record (`_changes` compares the file's with the state; the
# writer sets the customer's state from whichever record is newest once the file's is in).
_NEWEST_CONSENTS = {
    f"newest_{channel}_consent{suffix}": _newest_consent(channel, field)
    for channel in ConsentChannel.values
    for suffix, field in (("", "granted"), ("_at", "at"))
}


# --- Deciding what an order row does ---------------------------------------------------------


def _order_items(reads: list[_Read]) -> tuple[list[tuple[_Read, ImportedOrder]], dict]:
    """Each valid order row as the storefront import's ImportedOrder, or why it is refused."""
    valid = [r for r in reads if r.values is not None]
    emails = {r.values["email"].lower() for r in valid if r.values.get("email")}
    external = {
        r.values["customer_external_id"] for r in valid if r.values.get("customer_external_id")
    }
    by_email = dict(
        Customer.objects.alias(email_key=Lower("email"))
        .filter(email_key__in=sorted(emails))
        .annotate(key=Lower("email"))
        .values_list("key", "pk")
    )
    by_external = dict(
        customers_with_external_id(sorted(external)).values_list("external_id", "pk")
    )
    items, refused = [], {}
    now = timezone.now()
    for read in valid:
        values = read.values
        by_id = by_external.get(values.get("customer_external_id"))
        by_address = by_email.get(values.get("email", "").lower())
        if by_id and by_address and by_id != by_address:
            # Shop ids of two platforms may collide (a PrestaShop 12, a WooCommerce 12): the
            # id alone would credit the order to whoever has it. The email alone, when it is
            # nobody's, may be one the customer has changed since the order.
            who = f"{values['customer_external_id']}, {values['email']}"
            refused[read.ordinal] = rows.Refused("customer_mismatch", who)
            continue
        customer_id = by_id or by_address
        if customer_id is None:
            who = values.get("email") or values.get("customer_external_id")
            refused[read.ordinal] = rows.Refused("unknown_customer", who)
            continue
        total = Decimal(values["total"])
        try:
            draft = order_draft(
                number=values["number"],
                lines=[
                    LineInput(
                        product_name=IMPORTED_ORDER_LINE, sku="", quantity=1, unit_price=total
                    )
                ],
                currency=values.get("currency"),
                source=values.get("source"),
                medium=values.get("medium"),
                campaign=values.get("campaign"),
                placed_at=datetime.fromisoformat(values["placed_at"]),
                now=now,
            )
            refunded = values.get("refunded_amount")
            item = order_import_check(
                ImportedOrder(
                    draft=draft,
                    customer_id=customer_id,
                    status=values["status"],
                    refunded_amount=Decimal(refunded) if refunded is not None else None,
                )
            )
        except OrderError as error:
            refused[read.ordinal] = rows.Refused("order_refused", error.messages[0])
            continue
        items.append((read, item))
    return items, refused


class _DryRun(Exception):
    """Rolls back the order import a dry run ran to see what it would do."""


def _order_outcomes(reads: list[_Read], *, dry: bool, actor=None) -> dict[int, tuple[str, object]]:
    """{ordinal: (action, Refused | None)} for a batch of order rows; written unless dry,
    credited to `actor` (who applies the import) in the customers' change history."""
    items, refused = _order_items(reads)
    outcomes = {o: (RowAction.REFUSED, r) for o, r in refused.items()}
    if not items:
        return outcomes
    results = []
    try:
        with transaction.atomic():
            results = orders_import([item for _read, item in items], actor=actor)
            if dry:
                raise _DryRun()
    except _DryRun:
        pass
    words = {
        "created": RowAction.CREATE,
        "updated": RowAction.UPDATE,
        "unchanged": RowAction.UNCHANGED,
    }
    for (read, _item), result in zip(items, results, strict=True):
        if isinstance(result, OrderError):
            outcomes[read.ordinal] = (
                RowAction.REFUSED,
                rows.Refused("order_refused", result.messages[0]),
            )
        else:
            outcomes[read.ordinal] = (words[result[0]], None)
    return outcomes


# --- The dry run ------------------------------------------------------------------------------


# The key of a dry run's counts for the rows imported with a note (imports.rows.REASONS).
NOTED = "noted"


def _count(counts: dict, action: str, n: int = 1) -> None:
    counts[action] = counts.get(action, 0) + n


def import_check(*, job_id: int) -> ImportJob:
    """The dry run: read every row, decide what it would do, write nothing but the job's rows.
    One transaction per batch; started again from the top if it was interrupted."""
    job = ImportJob.objects.get(pk=job_id)
    if job.status != ImportStatus.CHECKING:
        return job
    ImportRow.objects.filter(job=job).delete()
    counts: dict = {}
    checked = batches = 0
    try:
        with closing(_read_ahead(_batches(_file_rows(job)))) as read:
            for batch in read:
                with transaction.atomic():
                    if not ImportJob.objects.filter(
                        pk=job.pk, status=ImportStatus.CHECKING
                    ).exists():
                        return ImportJob.objects.get(pk=job.pk)  # cancelled meanwhile
                    staged = _check_batch(job, batch)
                    _insert(ImportRow, staged)
                    batches += 1
                    if batches in _ANALYZE_AT:
                        _analyze(ImportRow)
                    for row in staged:
                        _count(counts, row.action)
                        if row.reasons and row.action != RowAction.REFUSED:
                            _count(counts, NOTED)
                    checked += len(batch)
                    ImportJob.objects.filter(pk=job.pk).update(
                        checked_rows=checked, counts=counts, heartbeat_at=timezone.now()
                    )
    except UnreadableFile as error:
        return _fail(job, str(error))
    with transaction.atomic():
        job = ImportJob.objects.select_for_update().get(pk=job.pk)
        if job.status != ImportStatus.CHECKING:
            return job
        job.total_rows = checked
        job.checked_rows = checked
        job.counts = counts
        job.checked_at = timezone.now()
        job.heartbeat_at = job.checked_at
        job.status = ImportStatus.CHECKED
        job.save()
    return job


# The table of import rows fills during a dry run: give PostgreSQL statistics for it as it
# grows (1, 4, 16, 64, 256 batches), so that it keeps reading a batch's keys from the
# (job, key) index. ANALYZE samples a bounded number of rows: milliseconds each time.
_ANALYZE_AT = {1, 4, 16, 64, 256}


def _analyze(model) -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {connection.ops.quote_name(model._meta.db_table)}")


def _fail(job: ImportJob, message: str) -> ImportJob:
    ImportJob.objects.filter(pk=job.pk).update(
        status=ImportStatus.FAILED, error=message[:2000], heartbeat_at=timezone.now()
    )
    return ImportJob.objects.get(pk=job.pk)


def _seen(job: ImportJob, keys: set[str], column: str) -> dict[str, int]:
    """The line of the earliest kept row of this file with each key, from the rows the dry
    run already staged (looked up, not held in memory: memory does not grow with the file)."""
    if not keys:
        return {}
    return dict(
        ImportRow.objects.filter(_among(column, keys, "text"), job=job)
        .exclude(action=RowAction.REFUSED)
        .order_by("-ordinal")
        .values_list(column, "line")
    )


def _check_batch(job: ImportJob, batch: list[_Read]) -> list[ImportRow]:
    orders = job.kind == ImportKind.ORDERS
    first_line: dict[str, int] = {}
    external_line: dict[str, int] = {}
    earlier = _seen(job, {_key(r.values, orders) for r in batch if r.values is not None}, "key")
    earlier_ext = {}
    if not orders:
        ext = {r.values["external_id"] for r in batch if r.values and r.values.get("external_id")}
        earlier_ext = _seen(job, ext, "external_id")
    for read in batch:
        if read.values is None:
            continue
        key = _key(read.values, orders)
        line = earlier.get(key) or first_line.get(key)
        ext = "" if orders else read.values.get("external_id", "")
        if not line and ext:
            line = earlier_ext.get(ext) or external_line.get(ext)
        if line:
            read.refused = rows.Refused("duplicate_order" if orders else "duplicate", line)
            read.values = None
            continue
        first_line[key] = read.line
        if ext:
            external_line[ext] = read.line
    if orders:
        outcomes = _order_outcomes(batch, dry=True)
        plans = {o: _Plan(action, refused=refused) for o, (action, refused) in outcomes.items()}
    else:
        plans = _customer_plans(batch, lock=False)
    staged = []
    for read in batch:
        plan = plans.get(read.ordinal)
        refused = read.refused or (plan.refused if plan else None)
        values = read.values if refused is None else {}
        staged.append(
            ImportRow(
                job=job,
                ordinal=read.ordinal,
                line=read.line,
                action=RowAction.REFUSED if refused else plan.action,
                # A refused row's reasons, or what an imported one is imported without.
                reasons=[[refused.code, refused.value]]
                if refused
                else [list(note) for note in read.notes.values()],
                key=_key(values, orders) if values else "",
                external_id=(values or {}).get("external_id", "")[:100] if not orders else "",
                values=values or {},
                changes=_jsonable(plan.changes) if plan and not refused else {},
            )
        )
    return staged


def _key(values: dict, orders: bool) -> str:
    return values["number"] if orders else values["email"].lower()


def _jsonable(changes: dict) -> dict:
    return {
        k: [v if isinstance(v, bool | str | int) or v is None else str(v) for v in pair]
        for k, pair in changes.items()
    }


# --- Applying ---------------------------------------------------------------------------------


def import_apply(*, job_id: int) -> ImportJob:
    """Apply a checked import from its cursor on, one transaction per batch (rows and cursor
    together). Runs in the worker; safe to run twice (a second run finds nothing to do)."""
    job = ImportJob.objects.select_related("applied_by").get(pk=job_id)
    if job.status != ImportStatus.APPLYING:
        return job
    batches = 0
    while True:
        with transaction.atomic():
            job = (
                ImportJob.objects.select_for_update(of=("self",))
                .select_related("applied_by")
                .get(pk=job_id)
            )
            if job.status != ImportStatus.APPLYING:
                return job
            # Plain tuples: the refusals and diffs are the page's, not needed here.
            batch = list(
                ImportRow.objects.filter(job=job, ordinal__gt=job.applied_rows)
                .order_by("ordinal")
                .values_list("ordinal", "line", "action", "values")[:BATCH]
            )
            if not batch:
                job.status = ImportStatus.APPLIED
                job.finished_at = timezone.now()
                job.heartbeat_at = job.finished_at
                job.save()
                # Its rows are in the database now: the uploaded copy of the customers'
                # personal data has no further use (privacy), so it is not kept.
                transaction.on_commit(partial(_delete_file, job.file.name))
                return job
            counts = _apply_batch(job, batch)
            applied = dict(job.applied_counts)
            for action, n in counts.items():
                _count(applied, action, n)
            job.applied_counts = applied
            job.applied_rows = batch[-1][0]
            job.heartbeat_at = timezone.now()
            job.save(update_fields=["applied_counts", "applied_rows", "heartbeat_at"])
        batches += 1
        if batches in _ANALYZE_AT and job.kind == ImportKind.CUSTOMERS:
            # The import fills the consent ledger, maybe from empty (a new shop's first
            # import): without statistics PostgreSQL takes each customer's lookup in it
            # (_newest_consent) for 0.5% of the ledger, and past some size compiles the
            # batch's query (JIT: 50 ms and more, for 8 ms of work). Committed batches only.
            _analyze(ConsentRecord)


def import_fail(*, job_id: int, message: str) -> ImportJob:
    """Record why the background work stopped (the committed batches stay applied)."""
    return _fail(ImportJob.objects.get(pk=job_id), message)


def _apply_batch(job: ImportJob, batch: list[tuple]) -> dict:
    """Apply a batch of (ordinal, line, action, values) rows; the counts by action."""
    reads = [
        _Read(ordinal, line, values=values or None)
        for ordinal, line, action, values in batch
        if action != RowAction.REFUSED
    ]
    counts = {RowAction.REFUSED: len(batch) - len(reads)}
    if not reads:
        return counts
    if job.kind == ImportKind.ORDERS:
        for action, _refused in _order_outcomes(reads, dry=False, actor=job.applied_by).values():
            _count(counts, action)
        return counts
    plans = _customer_plans(reads, lock=True)
    writer = _CustomerWriter(job)
    for read in reads:
        plan = plans[read.ordinal]
        _count(counts, plan.action)
        if plan.action == RowAction.CREATE:
            writer.create(read.values)
        elif plan.action == RowAction.UPDATE:
            writer.update(plan.customer, read.values, plan.changes)
    writer.flush()
    return counts


class _CustomerWriter:
    """The writes of one batch of customer rows, done set-based: a few statements per batch."""

    def __init__(self, job: ImportJob):
        self.job = job
        self.now = timezone.now()
        self.actor = job.applied_by
        self.new: list[tuple[Customer, dict]] = []
        self.updated: list[tuple[Customer, dict, dict]] = []

    def create(self, values: dict) -> None:
        created = values.get("created_at")
        customer = Customer(
            email=values["email"],
            first_name=values.get("first_name", ""),
            last_name=values.get("last_name", ""),
            phone=values.get("phone", ""),
            language=values.get("language", ""),
            external_id=values.get("external_id", ""),
            created_at=datetime.fromisoformat(created) if created else self.now,
            updated_at=self.now,
        )
        self.new.append((customer, values))

    def update(self, customer: Customer, values: dict, changes: dict) -> None:
        self.updated.append((customer, values, changes))

    def _address(self, customer: Customer, values: dict) -> Address:
        name = f"{customer.first_name} {customer.last_name}".strip() or customer.email
        return Address(customer=customer, name=name[:200], phone="", **values)

    def flush(self) -> None:
        source = self._source()
        audits, consents = [], []
        new = [c for c, _v in self.new]
        # PostgreSQL: the new customers' and addresses' ids are taken from their sequences
        # first, so each new customer is written once, complete (search text, default
        # addresses, consent state), instead of inserted then updated twice: every write of a
        # customer row puts an entry in each of its many indexes. (The foreign keys between
        # them are checked at commit.) SQLite: inserted, then updated.
        once = connection.vendor == "postgresql"
        if new and once:
            _take_ids(Customer, new)
        elif new:
            _insert(Customer, new)
        addresses = []  # (customer, kind, Address)
        for customer, values in self.new:
            billing = None
            for kind in ("billing", "shipping"):
                wanted = values.get(f"{kind}_address")
                if not wanted:
                    continue
                if billing is not None and _same_address(values["billing_address"], wanted):
                    address = billing  # the same address twice (Squarespace, WooCommerce): one
                else:
                    address = billing = self._address(customer, wanted)
                addresses.append((customer, kind, address))
        for customer, values, changes in self.updated:
            both = None  # the one address of a file with one, when it replaces both defaults
            for kind in ("billing", "shipping"):
                if f"default_{kind}_address" in changes:
                    wanted = values.get(f"{kind}_address")
                    if wanted is None:  # the billing one, for both (_changes)
                        address = both
                    elif kind == "shipping" and _same_address(
                        values.get("billing_address") or {}, wanted
                    ):
                        # The billing one given again as the shipping one: the same address,
                        # new with this row or the stored billing default it already matches.
                        address = both or customer.default_billing_address
                    else:
                        address = both = self._address(customer, wanted)
                    addresses.append((customer, kind, address))
        written = list({id(a): a for _c, _k, a in addresses if a.pk is None}.values())
        if once:
            _take_ids(Address, written)
        else:
            _insert(Address, written)
        for customer, kind, address in addresses:
            setattr(customer, f"default_{kind}_address", address)
            if kind == "billing":
                customer.country = address.country
        for customer, values in self.new:
            if customer.default_billing_address_id and not customer.default_shipping_address_id:
                customer.default_shipping_address = customer.default_billing_address
            if customer.default_shipping_address_id and not customer.default_billing_address_id:
                customer.default_billing_address = customer.default_shipping_address
                customer.country = customer.default_billing_address.country
            self._refresh_search(customer, values.get("phone_variants"))
            changes = {"file": ["", self.job.file_name]}
            changes.update(
                {k: ["", values[k]] for k in ("email", *CONTACT, "external_id") if values.get(k)}
            )
            for kind in ("billing", "shipping"):
                if values.get(f"{kind}_address"):
                    changes[f"default_{kind}_address"] = [
                        "",
                        _address_text(values[f"{kind}_address"]),
                    ]
            audits.append(self._audit(customer, changes))
            records = self._consents(customer, values, source)
            _consent_state(customer, records)
            consents += records
        for customer, values, changes in self.updated:
            for name in CONTACT:
                if name in changes:
                    setattr(customer, name, values[name])
            if "external_id" in changes:
                customer.external_id = values["external_id"]
            if "created_at" in changes:
                customer.created_at = datetime.fromisoformat(values["created_at"])
            customer.version += 1
            customer.updated_at = self.now
            if "phone" in changes:
                self._refresh_search(customer, values.get("phone_variants"))
            elif any(name in changes for name in CONTACT):
                self._refresh_search(customer)
            audits.append(self._audit(customer, {"file": ["", self.job.file_name], **changes}))
            records = self._consents(customer, values, source, only=changes)
            _consent_state(customer, records)
            consents += records
        if once:
            _insert(Customer, new, with_pk=True)
            _insert(Address, written, with_pk=True)
        elif new:
            _update_customers(new, _NEW_COLUMNS)
        if self.updated:
            _update_customers([c for c, _v, _ch in self.updated], _UPDATED_COLUMNS)
        _insert_rows(AuditEntry, _AUDIT_FIELDS, audits)
        # Consents go to the privacy app's ledger (source "import", the file in the note); the
        # customers' current state, set above, went with the customers' rows.
        _insert_rows(ConsentRecord, _CONSENT_FIELDS, consents)

    def _source(self) -> str:
        label = str(ImportFormat(self.job.format).label) if self.job.format else ""
        with_label = f"{label}: {self.job.file_name}" if label else self.job.file_name
        return with_label[:300]

    def _refresh_search(self, customer: Customer, variants: list[str] | None = None) -> None:
        customer.search_text = customer_search_text(
            pk=customer.pk,
            first_name=customer.first_name,
            last_name=customer.last_name,
            email=customer.email,
            phone=customer.phone,
            variants=variants,
        )

    def _audit(self, customer: Customer, changes: dict) -> tuple:
        """An audit entry's row (_AUDIT_FIELDS)."""
        actor = self.actor.pk if self.actor else None
        origin = AuditOrigin.STAFF.value
        return (customer.pk, actor, self.now, AuditAction.IMPORT.value, origin, _jsonable(changes))

    def _consents(self, customer, values, source, only=None) -> list[tuple]:
        """The consent records' rows (_CONSENT_FIELDS) of the row's consent columns."""
        found = []
        actor = self.actor.pk if self.actor else None
        for channel in ConsentChannel.values:
            granted = values.get(f"{channel}_consent")
            if granted is None or (only is not None and f"{channel}_consent" not in only):
                continue
            if only is None and not granted:
                continue  # a new customer's "no": never given, nothing to withdraw
            at = values.get(f"{channel}_consent_at")
            at = datetime.fromisoformat(at) if at else self.now
            found.append(
                (customer.pk, channel, granted, at, ConsentSource.IMPORT.value, "", source, actor)
            )
        return found


def _consent_state(customer: Customer, records: list[tuple]) -> None:
    """Set the customer's current consent (email_consent, sms_consent) to what the ledger's
    newest record of each channel will be once these (_CONSENT_FIELDS rows) are in, as
    privacy.services.consent_state_refresh would read it back: a record dated before the
    newest one stored leaves the state alone; one dated the same is newer (a larger id). Written
    with the customer's row rather than by an UPDATE after it: each write of a customer row
    puts an entry in each of its many indexes."""
    for _customer, channel, granted, at, *_rest in records:
        newest = getattr(customer, f"newest_{channel}_consent_at", None)
        if newest is None or at >= newest:
            setattr(customer, CONSENT_STATE[channel], granted)


# The rows a batch writes without making model instances (Django's __init__, and the signals
# it sends, cost more than the write): each one's fields, in order.
_AUDIT_FIELDS = ("customer_id", "actor_id", "at", "action", "origin", "changes")
_CONSENT_FIELDS = (
    "customer_id",
    "channel",
    "granted",
    "at",
    "source",
    "wording",
    "note",
    "recorded_by_id",
)


# The columns a batch writes back to customers it created (SQLite: their search text needs
# their id) and to those it updated, with their PostgreSQL types.
_NEW_COLUMNS = (
    ("search_text", "text"),
    ("default_billing_address_id", "bigint"),
    ("default_shipping_address_id", "bigint"),
    ("country", "text"),
    ("email_consent", "boolean"),
    ("sms_consent", "boolean"),
)
_UPDATED_COLUMNS = (
    ("first_name", "text"),
    ("last_name", "text"),
    ("phone", "text"),
    ("language", "text"),
    ("external_id", "text"),
    ("version", "integer"),
    ("updated_at", "timestamptz"),
    ("created_at", "timestamptz"),
    *_NEW_COLUMNS,
)


def _update_customers(customers: list[Customer], columns) -> None:
    """Write these columns of many customers in one statement (PostgreSQL: UPDATE ... FROM
    unnest(arrays); SQLite: one prepared UPDATE run for each row). Django's bulk_update builds
    a CASE per column and row, which cost more than the rest of the import put together."""
    table = Customer._meta.db_table
    names = [name for name, _type in columns]
    adapt = connection.ops.adapt_datetimefield_value

    def value(customer, name):
        found = getattr(customer, name)
        return adapt(found) if name in ("updated_at", "created_at") else found

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            arrays = [[c.pk for c in customers]] + [
                [value(c, name) for c in customers] for name in names
            ]
            types = ", ".join(f"%s::{kind}[]" for kind in ["bigint", *(k for _n, k in columns)])
            cursor.execute(
                f"UPDATE {table} AS t SET "
                + ", ".join(f"{name} = v.{name}" for name in names)
                + f" FROM unnest({types}) AS v(id, {', '.join(names)}) WHERE t.id = v.id",
                arrays,
            )
        else:
            cursor.executemany(
                f"UPDATE {table} SET "
                + ", ".join(f"{name} = %s" for name in names)
                + " WHERE id = %s",
                [[*(value(c, name) for name in names), c.pk] for c in customers],
            )


def _insert_rows(model, names: tuple[str, ...], rows: list[tuple]) -> None:
    """Insert rows given as tuples of these fields' values (attnames): COPY on PostgreSQL,
    bulk_create elsewhere (SQLite)."""
    if not rows:
        return
    if connection.vendor != "postgresql":
        objects = [model(**dict(zip(names, row, strict=True))) for row in rows]
        model.objects.bulk_create(objects, batch_size=BATCH)
        return
    fields = [model._meta.get_field(name.removesuffix("_id")) for name in names]
    json_at = [i for i, f in enumerate(fields) if isinstance(f, JSONField)]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    table = connection.ops.quote_name(model._meta.db_table)
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy,
    ):
        for row in rows:
            if json_at:
                row = list(row)
                for i in json_at:
                    row[i] = json.dumps(row[i])
            copy.write_row(row)


def _take_ids(model, objects: list) -> None:
    """Give these new rows ids from their table's sequence (PostgreSQL), in one statement."""
    if not objects:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
            [model._meta.db_table, len(objects)],
        )
        for obj, (pk,) in zip(objects, cursor.fetchall(), strict=True):
            obj.pk = pk


# Fields whose value is written as it is when it is a str, bool, int or None (what
# get_db_prep_save would return for those, for a microsecond a value).
_PLAIN_FIELDS = (
    models.CharField,
    models.TextField,
    models.BooleanField,
    models.IntegerField,
    models.ForeignKey,
)
_PLAIN_TYPES = (str, bool, int, type(None))


def _insert(model, objects: list, *, with_pk: bool = False) -> None:
    """Insert many rows. PostgreSQL: one COPY (ids given beforehand with `with_pk`, or by
    the table's default); Django's bulk_create compiles every value of every row, and an
    INSERT from unnest() arrays had psycopg build each array in Python: most of an import's
    CPU either way. Elsewhere (SQLite): bulk_create, which sets the new ids."""
    if not objects:
        return
    if connection.vendor != "postgresql":
        model.objects.bulk_create(objects, batch_size=BATCH)
        return
    fields = [
        f
        for f in model._meta.concrete_fields
        if (with_pk or not f.primary_key)
        and not isinstance(getattr(objects[0], f.attname), DatabaseDefault)
    ]
    columns = []
    for f in fields:
        values = [getattr(o, f.attname) for o in objects]
        if isinstance(f, JSONField):
            values = [json.dumps(v) for v in values]
        elif not (isinstance(f, _PLAIN_FIELDS) and all(type(v) in _PLAIN_TYPES for v in values)):
            values = [f.get_db_prep_save(v, connection) for v in values]
            values = [v.value if isinstance(v, Enum) else v for v in values]
        columns.append(values)
    names = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    table = connection.ops.quote_name(model._meta.db_table)
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy,
    ):
        for row in zip(*columns, strict=True):
            copy.write_row(row)
