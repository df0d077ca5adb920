from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils.translation import gettext_lazy as _


class ExportFormat(models.TextChoices):
    # Translated so that the catalog says the names are the same in French.
    CSV = "csv", _("CSV")
    XLSX = "xlsx", _("XLSX")


class ExportScope(models.TextChoices):
    """Which rows of the tab: the search and filters of the list, the ticked ones, or all."""

    FILTERED = "filtered", _("the current search and filters")
    SELECTED = "selected", _("the selected customers")
    ALL = "all", _("the whole tab")


class ExportStatus(models.TextChoices):
    PENDING = "pending", _("waiting")
    RUNNING = "running", _("in progress")
    DONE = "done", _("ready")
    FAILED = "failed", _("failed")
    # A CSV download the browser stopped before its end (the rows count is what was sent).
    INTERRUPTED = "interrupted", _("interrupted")
    # A finished XLSX file removed after EXPORT_RETENTION_HOURS.
    EXPIRED = "expired", _("expired")


class Export(models.Model):
    """One export of customers asked for by a user: the audit record of who took which
    customers out (kept after its file expires), and for XLSX the file being built.

    CSV exports stream as they are written (no file kept); XLSX ones are built by a task
    (exports/tasks.py) into the "exports" storage and downloadable by `requested_by` only,
    until `expires_at`.
    """

    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_at = models.DateTimeField()
    tab = models.CharField(max_length=10)
    scope = models.CharField(max_length=10, choices=ExportScope.choices)
    # The search and filters, as the list's query string gave them (clients.listing.filter_query).
    query = models.TextField(blank=True)
    # The sort key of the list ("-last_order"); the file is in that order.
    sort = models.CharField(max_length=30)
    # The ticked customers' ids, for a "selected" export.
    ids = models.JSONField(default=list, blank=True)
    file_format = models.CharField(max_length=4, choices=ExportFormat.choices)
    language = models.CharField(max_length=10)
    status = models.CharField(
        max_length=12, choices=ExportStatus.choices, default=ExportStatus.PENDING
    )
    # Rows the query matched when the file was started (XLSX: the progress bar's 100%).
    total = models.PositiveIntegerField(null=True, blank=True)
    # Rows written so far; the export's row count once it is done.
    rows = models.PositiveIntegerField(default=0)
    file = models.CharField(max_length=255, blank=True)
    error = models.TextField(blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["requested_by", "-requested_at", "-id"]),
            models.Index(fields=["status", "expires_at"]),
        ]

    def __str__(self):
        at = f"{self.requested_at:%Y-%m-%d %H:%M}"
        return f"{self.file_format} export of {self.tab} ({self.scope}) at {at}"

    def get_absolute_url(self):
        return reverse("exports:export-detail", args=[self.pk])

    @property
    def progress_percent(self) -> int:
        if self.status == ExportStatus.DONE:
            return 100
        if not self.total:
            return 0
        return min(100, self.rows * 100 // self.total)

    @property
    def in_progress(self) -> bool:
        return self.status in (ExportStatus.PENDING, ExportStatus.RUNNING)
