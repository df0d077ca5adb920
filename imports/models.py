"""Imports of customers and of order history from spreadsheet files.

An import is a job: the file is stored (Django's storage API, so a worker on another machine
reads it), checked in the background (the dry run: every row parsed, validated and matched,
nothing written to customers or orders), then applied in the background or cancelled. The
dry run keeps each row, normalized, in `ImportRow`; applying walks those rows in batches, one
transaction per batch that also moves the job's cursor, so a failure leaves each row either
fully applied or not at all and the import resumes at the first batch not committed.
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils.translation import gettext_lazy as _


class ImportKind(models.TextChoices):
    CUSTOMERS = "customers", _("Customers")
    ORDERS = "orders", _("Order history")


class ImportFormat(models.TextChoices):
    OURS = "ours", _("This back office's export")
    SHOPIFY = "shopify", _("Shopify customer export")
    WOOCOMMERCE = "woocommerce", _("WooCommerce customer export")
    PRESTASHOP = "prestashop", _("PrestaShop customer export")
    MAGENTO = "magento", _("Magento customers main file")
    MAILCHIMP = "mailchimp", _("Mailchimp audience export")
    SQUARESPACE = "squarespace", _("Squarespace contacts export")
    ORDERS = "orders", _("Order history file")
    MANUAL = "manual", _("Columns chosen by hand")


class ImportStatus(models.TextChoices):
    MAPPING = "mapping", _("Columns to choose")
    CHECKING = "checking", _("Checking")
    CHECKED = "checked", _("Ready to apply")
    APPLYING = "applying", _("Applying")
    APPLIED = "applied", _("Applied")
    FAILED = "failed", _("Stopped by an error")
    CANCELLED = "cancelled", _("Cancelled")


class RowAction(models.TextChoices):
    CREATE = "create", _("To create")
    UPDATE = "update", _("To update")
    UNCHANGED = "unchanged", _("Unchanged")
    REFUSED = "refused", _("Refused")


# An import in these states waits for the user (a dry run still "checking" after
# IMPORT_ABANDONED_DAYS lost its worker long ago); so does one that stopped before any row
# was applied.
WAITING = (ImportStatus.MAPPING, ImportStatus.CHECKING, ImportStatus.CHECKED)


def waiting_imports(touched_before: datetime) -> models.Q:
    """The imports waiting for the user (ImportJob.is_waiting) last touched (uploaded, checked,
    stopped) before this time."""
    return (models.Q(status__in=WAITING) | models.Q(status=ImportStatus.FAILED, applied_rows=0)) & (
        models.Q(heartbeat_at__lt=touched_before)
        | models.Q(heartbeat_at=None, created_at__lt=touched_before)
    )


class ImportJob(models.Model):
    """One uploaded file and what became of it."""

    kind = models.CharField(max_length=20, choices=ImportKind.choices)
    file = models.FileField(upload_to="imports/%Y/%m/", max_length=300)
    file_name = models.CharField(max_length=255)
    file_size = models.BigIntegerField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField()
    status = models.CharField(max_length=20, choices=ImportStatus.choices)
    format = models.CharField(max_length=20, choices=ImportFormat.choices, blank=True)
    # How the file was read: "xlsx", or the CSV's text encoding and delimiter (sniffed).
    encoding = models.CharField(max_length=30, blank=True)
    delimiter = models.CharField(max_length=1, blank=True)
    # The header row as read, and the field each column is imported into ("" = ignored).
    headers = models.JSONField(default=list)
    mapping = models.JSONField(default=list)
    # How dates without a year-first form are read: "dmy" (31/12/2025) or "mdy" (12/31/2025).
    date_order = models.CharField(max_length=3, default="dmy")
    # Progress: rows read by the dry run; rows applied so far (the resume cursor: every row
    # with a smaller ordinal is applied, in the same transaction that moved it).
    total_rows = models.PositiveIntegerField(default=0)
    checked_rows = models.PositiveIntegerField(default=0)
    applied_rows = models.PositiveIntegerField(default=0)
    # {"create": n, "update": n, "unchanged": n, "refused": n}: the dry run's, then the apply's.
    counts = models.JSONField(default=dict)
    applied_counts = models.JSONField(default=dict)
    error = models.TextField(blank=True)
    checked_at = models.DateTimeField(null=True, blank=True)
    applied_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    apply_started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # When the daily task deleted the checked rows of this applied import (IMPORT_RETENTION_DAYS
    # after it was applied): the counts stay, the refused rows and the updates' diffs are gone.
    rows_deleted_at = models.DateTimeField(null=True, blank=True)
    # Cancelled by the daily task: left waiting (neither applied nor cancelled) for
    # IMPORT_ABANDONED_DAYS, its file and checked rows deleted (privacy).
    abandoned = models.BooleanField(default=False)
    # Moved by every committed step of the background work: a job "checking" or "applying"
    # whose heartbeat is old lost its worker and may be resumed.
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        permissions = [("import_data", "Can import customers and orders from files")]
        indexes = [models.Index(fields=["-created_at", "-id"], name="importjob_recent_idx")]

    def __str__(self):
        return f"{self.file_name} ({self.kind}, {self.status})"

    def get_absolute_url(self):
        return reverse("imports:job-detail", args=[self.pk])

    @property
    def is_running(self) -> bool:
        return self.status in (ImportStatus.CHECKING, ImportStatus.APPLYING)

    def percent(self, done: int) -> int:
        return min(100, done * 100 // self.total_rows) if self.total_rows else 0

    @property
    def rows_kept_until(self) -> datetime | None:
        """When the daily task deletes the checked rows of an applied import."""
        if self.status != ImportStatus.APPLIED or self.finished_at is None:
            return None
        return self.finished_at + timedelta(days=settings.IMPORT_RETENTION_DAYS)

    @property
    def is_waiting(self) -> bool:
        """Left for the user to apply or cancel (or to choose its columns): cancelled by the
        daily task if it stays so IMPORT_ABANDONED_DAYS (`waiting_imports` says the same)."""
        if self.status == ImportStatus.FAILED:
            return not self.applied_rows  # partly applied: it can only be resumed
        return self.status in WAITING

    @property
    def cancelled_after(self) -> datetime | None:
        """When the daily task cancels this import if it is still waiting."""
        if not self.is_waiting:
            return None
        touched = self.heartbeat_at or self.created_at
        return touched + timedelta(days=settings.IMPORT_ABANDONED_DAYS)

    @property
    def has_no_rows(self) -> bool:
        """Checked, and the file has no row under its header: nothing to apply."""
        return self.status == ImportStatus.CHECKED and not self.total_rows

    @property
    def status_label(self) -> str:
        if self.has_no_rows:
            return str(_("No rows to import"))
        return self.get_status_display()

    @property
    def check_percent(self) -> int:
        return self.percent(self.checked_rows)

    @property
    def apply_percent(self) -> int:
        return self.percent(self.applied_rows)


class ImportRow(models.Model):
    """One data row of a checked file: its values normalized, and what applying it does."""

    # No index of its own: the (job, ...) indexes below serve every lookup by job, and with a
    # job-only index PostgreSQL, before it has statistics for a table the dry run is filling,
    # read every row of the job to find a batch's keys (a dry run quadratic in the rows).
    job = models.ForeignKey(
        ImportJob, on_delete=models.CASCADE, related_name="rows", db_index=False
    )
    # The row's place among the file's data rows (1, 2, ...) and the file line it starts on
    # (a quoted cell may span lines; the header is line 1).
    ordinal = models.PositiveIntegerField()
    line = models.PositiveIntegerField()
    action = models.CharField(max_length=10, choices=RowAction.choices)
    # Why a refused row is refused: [[code, value], ...] (imports.rows.REASONS words them).
    reasons = models.JSONField(default=list)
    # Lower-case email (customers) or order number (orders): duplicates in the file.
    key = models.CharField(max_length=254, blank=True)
    external_id = models.CharField(max_length=100, blank=True)
    values = models.JSONField(default=dict)
    # For an update: {"field": [stored, imported]} as the dry run found it.
    changes = models.JSONField(default=dict)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["job", "ordinal"], name="importrow_job_ordinal")
        ]
        indexes = [
            models.Index(fields=["job", "key"], name="importrow_job_key_idx"),
            models.Index(fields=["job", "external_id"], name="importrow_job_ext_idx"),
            # The page lists the refused rows and the first updates; the other rows (most of a
            # file: created, unchanged) need no entry.
            models.Index(
                fields=["job", "action", "ordinal"],
                name="importrow_job_action_idx",
                condition=models.Q(action__in=["refused", "update"]),
            ),
        ]

    def __str__(self):
        return f"{self.job_id} line {self.line}: {self.action}"


class ConsentChannel(models.TextChoices):
    EMAIL = "email", _("Email marketing")
    SMS = "sms", _("SMS marketing")
