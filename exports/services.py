"""Every write of the exports app: recording an export (the audit of who took which customers
out), streaming a CSV, building an XLSX file, deleting expired files."""

import logging
import os
import tempfile
from collections.abc import Iterator
from datetime import timedelta

from django.conf import settings
from django.core.files import File
from django.core.files.storage import storages
from django.db import connection, transaction
from django.utils import timezone, translation
from django.utils.text import slugify
from django.utils.translation import gettext

from exports import pgcopy, writers
from exports.columns import FIELDS
from exports.models import Export, ExportFormat, ExportStatus
from exports.selectors import export_customers_of, export_rows, export_sort

logger = logging.getLogger(__name__)

STORAGE_ALIAS = "exports"
# Rows read from the database per round trip (a server-side cursor on PostgreSQL).
CHUNK_SIZE = 2000
TAB_NAMES = {"clients": "Clients", "leads": "Leads"}
# XLSX files one user may have waiting or being built at once: each one keeps a task worker
# busy for minutes at a million rows.
MAX_BUILDING_PER_USER = 2


def export_storage():
    """Where XLSX files are kept: the "exports" storage of settings.STORAGES."""
    return storages[STORAGE_ALIAS]


def retention() -> timedelta:
    return timedelta(hours=settings.EXPORT_RETENTION_HOURS)


def export_create(
    *,
    user,
    tab: str,
    scope: str,
    query: str,
    sort: str,
    ids: list[int],
    file_format: str,
    language: str,
) -> Export:
    """Record an export asked for by `user` (its audit entry), after checking its rows can be
    read: ValueError with a message for the user otherwise, and nothing is written."""
    # Built only to validate the arguments; the file reads the rows again.
    export_rows(tab=tab, scope=scope, query=query, ids=ids, sort=sort)
    if file_format == ExportFormat.XLSX and user is not None:
        building = Export.objects.filter(
            requested_by=user,
            file_format=ExportFormat.XLSX,
            status__in=(ExportStatus.PENDING, ExportStatus.RUNNING),
        ).count()
        if building >= MAX_BUILDING_PER_USER:
            raise ValueError(
                gettext("%(n)s of your XLSX exports are still being built: wait for them.")
                % {"n": building}
            )
    return Export.objects.create(
        requested_by=user,
        requested_at=timezone.now(),
        tab=tab,
        scope=scope,
        query=query if scope == "filtered" else "",
        sort=export_sort(tab=tab, sort=sort),
        ids=ids if scope == "selected" else [],
        file_format=ExportFormat(file_format),
        language=language,
        status=ExportStatus.RUNNING if file_format == ExportFormat.CSV else ExportStatus.PENDING,
    )


def export_file_name(export: Export) -> str:
    """The file name offered to the browser: "clients-2025-12-31-1405.csv", in the export's
    language ("prospects-…" in French)."""
    with translation.override(export.language):
        tab = slugify(gettext(TAB_NAMES[export.tab]))
    moment = timezone.localtime(export.requested_at)
    return f"{tab}-{moment:%Y-%m-%d-%H%M}.{export.file_format}"


def export_stream_csv(export: Export) -> Iterator[bytes]:
    """The CSV file of `export`, chunk by chunk: memory stays flat whatever the number of rows
    (PostgreSQL writes the rows with COPY, exports/pgcopy.py; elsewhere they are read through
    a chunked cursor and written by exports/writers.py). The record gets the number of rows
    sent, and ends as done, or interrupted when the browser stopped reading before the end."""
    customers = export_customers_of(export)
    zone = timezone.get_default_timezone()
    sent = 0

    def count(n):
        nonlocal sent
        sent = n

    complete = False
    try:
        yield writers.csv_head(export.language)
        if connection.vendor == "postgresql":
            sql = pgcopy.copy_sql(customers, language=export.language, zone_name=str(zone))
            yield from pgcopy.copy_chunks(sql, counter=count)
        else:
            rows = customers.values_list(*FIELDS).iterator(chunk_size=CHUNK_SIZE)
            yield from writers.csv_chunks(rows, language=export.language, zone=zone, counter=count)
        complete = True
    finally:
        Export.objects.filter(pk=export.pk).update(
            rows=sent,
            total=sent if complete else None,
            status=ExportStatus.DONE if complete else ExportStatus.INTERRUPTED,
            finished_at=timezone.now(),
        )


def export_build_xlsx(*, export_id: int) -> Export | None:
    """Build the XLSX file of a pending export into the exports storage.

    Safe to run twice: only the run that moves the export from pending to running builds it.
    The file is written to a temporary file (XlsxWriter's constant-memory mode keeps one row
    in memory), then saved to the storage, so a worker on another machine than the web
    server works with any storage backend.
    """
    claimed = Export.objects.filter(pk=export_id, status=ExportStatus.PENDING).update(
        status=ExportStatus.RUNNING
    )
    if not claimed:
        return None
    export = Export.objects.get(pk=export_id)
    try:
        customers = export_customers_of(export)
        total = customers.count()
        Export.objects.filter(pk=export.pk).update(total=total)

        def progress(n):
            Export.objects.filter(pk=export.pk).update(rows=n)

        with translation.override(export.language), tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "export.xlsx")
            written = writers.write_xlsx(
                path,
                customers.values_list(*FIELDS).iterator(chunk_size=CHUNK_SIZE),
                language=export.language,
                zone=timezone.get_default_timezone(),
                sheet_name=gettext(TAB_NAMES[export.tab]),
                counter=progress,
            )
            with open(path, "rb") as handle:
                name = export_storage().save(
                    f"exports/{export.pk}/{export_file_name(export)}", File(handle)
                )
    except Exception as exc:
        logger.exception("XLSX export %s failed", export.pk)
        Export.objects.filter(pk=export.pk).update(
            status=ExportStatus.FAILED, error=str(exc)[:500], finished_at=timezone.now()
        )
        return Export.objects.get(pk=export.pk)
    now = timezone.now()
    Export.objects.filter(pk=export.pk).update(
        status=ExportStatus.DONE,
        rows=written,
        total=written,
        file=name,
        finished_at=now,
        expires_at=now + retention(),
    )
    return Export.objects.get(pk=export.pk)


def export_delete_expired(*, now=None) -> int:
    """Delete the files of finished exports past their expiry, and fail the builds that have
    been waiting or running for longer than the retention (their worker is gone); the
    records stay, as the audit of the export. The number of files deleted."""
    now = now or timezone.now()
    storage = export_storage()
    deleted = 0
    expired = Export.objects.filter(status=ExportStatus.DONE, expires_at__lte=now).exclude(file="")
    for export in expired.only("pk", "file").iterator():
        with transaction.atomic():
            # Marked first: a download from now on is refused even if deleting the file fails.
            Export.objects.filter(pk=export.pk).update(status=ExportStatus.EXPIRED, file="")
            if storage.exists(export.file):
                storage.delete(export.file)
        deleted += 1
    Export.objects.filter(
        file_format=ExportFormat.XLSX,
        status__in=(ExportStatus.PENDING, ExportStatus.RUNNING),
        requested_at__lte=now - retention(),
    ).update(
        status=ExportStatus.FAILED,
        error="The export did not finish in time (no task worker running?).",
        finished_at=now,
    )
    return deleted
