"""The privacy records: the consent ledger, erasure requests, data archives, the access log."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class Channel(models.TextChoices):
    PUSH = "push", _("Push notifications")
    EMAIL = "email", _("Email")
    SMS = "sms", _("SMS")


class ConsentSource(models.TextChoices):
    """How a consent was given or withdrawn (what proves it)."""

    STOREFRONT = "storefront", _("Storefront (the customer)")
    BROWSER = "browser", _("Browser permission prompt")
    PUSH_SERVICE = "push_service", _("Push service (subscription ended)")
    REPLACED = "replaced", _("Replaced by a newer subscription")
    IMPORT = "import", _("Import")
    PHONE = "phone", _("Staff, on the phone")
    EMAIL = "email", _("Staff, by email or letter")
    IN_PERSON = "in_person", _("Staff, in person")
    ERASURE = "erasure", _("Erasure of the customer's data")


# The sources staff may give when they record a consent in the back office.
STAFF_SOURCES = (ConsentSource.PHONE, ConsentSource.EMAIL, ConsentSource.IN_PERSON)


class ConsentRecord(models.Model):
    """One grant or withdrawal of a marketing consent (GDPR art. 7(1): the proof). Append-only:
    the current state of a channel is its newest record (denormalized on the customer)."""

    customer = models.ForeignKey(
        "clients.Customer", on_delete=models.CASCADE, related_name="consent_records"
    )
    channel = models.CharField(_("channel"), max_length=10, choices=Channel.choices)
    granted = models.BooleanField(_("granted"))
    at = models.DateTimeField(_("time"))
    source = models.CharField(_("source"), max_length=20, choices=ConsentSource.choices)
    # The wording shown to the customer, or its version ("newsletter-2026-03").
    wording = models.CharField(_("wording or its version"), max_length=500, blank=True)
    note = models.TextField(_("note"), blank=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The push subscription the record is about (push records written by the notifications app).
    subscription_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["customer", "-at", "-id"], name="consent_customer_idx")]

    def __str__(self):
        return (
            f"{self.customer_id} {self.channel} {'+' if self.granted else '-'} {self.at:%Y-%m-%d}"
        )


class ErasureSource(models.TextChoices):
    REQUEST = "request", _("The customer's request")
    RETENTION = "retention", _("Retention period passed")


class ErasureRequest(models.Model):
    """A request to erase a customer's personal data, carried out when its grace period ends
    (privacy.tasks) unless cancelled before."""

    customer = models.ForeignKey(
        "clients.Customer", on_delete=models.CASCADE, related_name="erasure_requests"
    )
    source = models.CharField(max_length=10, choices=ErasureSource.choices)
    reason = models.TextField(_("reason"))
    requested_at = models.DateTimeField()
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    due_at = models.DateTimeField(_("erased on"))
    cancelled_at = models.DateTimeField(null=True, blank=True)
    cancelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["customer"],
                condition=Q(cancelled_at__isnull=True, done_at__isnull=True),
                name="erasure_one_pending_per_customer",
            )
        ]
        indexes = [
            models.Index(
                fields=["due_at"],
                condition=Q(cancelled_at__isnull=True, done_at__isnull=True),
                name="erasure_pending_due_idx",
            )
        ]

    def __str__(self):
        return f"erasure of {self.customer_id} due {self.due_at:%Y-%m-%d}"

    @property
    def is_pending(self) -> bool:
        return self.cancelled_at is None and self.done_at is None


class ArchiveStatus(models.TextChoices):
    BUILDING = "building", _("Being prepared")
    READY = "ready", _("Ready to download")
    DOWNLOADED = "downloaded", _("Downloaded")
    EXPIRED = "expired", _("Expired")
    FAILED = "failed", _("Failed")


class DataArchive(models.Model):
    """A customer's data archive (access and portability request), built for one requester,
    downloadable once until `expires_at`; its content is dropped after the download."""

    customer = models.ForeignKey(
        "clients.Customer", on_delete=models.CASCADE, related_name="data_archives"
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    requested_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    status = models.CharField(
        max_length=10, choices=ArchiveStatus.choices, default=ArchiveStatus.BUILDING
    )
    # The ZIP file, kept in the database (shared by every worker and machine) until downloaded.
    content = models.BinaryField(default=b"")
    size = models.PositiveIntegerField(default=0)
    downloaded_at = models.DateTimeField(null=True, blank=True)
    error = models.CharField(max_length=300, blank=True)

    def __str__(self):
        return f"archive of {self.customer_id} for {self.requested_by_id}"


class AccessAction(models.TextChoices):
    CLIENT_VIEW = "client_view", _("Client page viewed")
    EXPORT = "export", _("Export")
    ARCHIVE_REQUEST = "archive_request", _("Data archive requested")
    ARCHIVE_DOWNLOAD = "archive_download", _("Data archive downloaded")
    ERASURE_REQUEST = "erasure_request", _("Erasure requested")
    ERASURE_CANCEL = "erasure_cancel", _("Erasure cancelled")
    ERASURE_DONE = "erasure_done", _("Personal data erased")
    CONSENT_RECORD = "consent_record", _("Consent recorded")
    RETENTION_PREVIEW = "retention_preview", _("Retention preview viewed")
    RETENTION_SWEEP = "retention_sweep", _("Retention sweep")
    AUDIT_VIEW = "audit_view", _("Access log viewed")


# How the access log's page names the keys of `detail`.
DETAIL_LABELS = {
    "leads": _("Leads"),
    "clients": _("Clients"),
    "archive": _("Data archive"),
    "erasure": _("Erasure"),
    "consent": _("Consent"),
    "bytes": _("Size in bytes"),
    "rows": _("Rows"),
    "export": _("Export number"),
    "tab": _("Tab"),
    "user": _("User"),
}


class AccessLogEntry(models.Model):
    """Who read or exported what about customers, when, from where. Append-only: rows are
    never changed (refused by a trigger on PostgreSQL) and deleted only by the pruning.

    No foreign keys: an entry outlives the user (its username is copied) and says which
    customer by id only, so it holds no customer's personal data and erasure leaves it be.
    `detail` holds ids and counts, never names or searches.
    """

    at = models.DateTimeField(db_index=True)
    user_id = models.IntegerField(null=True)
    username = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=20, choices=AccessAction.choices)
    customer_id = models.BigIntegerField(null=True)
    ip = models.GenericIPAddressField(null=True)
    path = models.CharField(max_length=300, blank=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["customer_id", "-at", "-id"], name="access_customer_idx"),
            models.Index(fields=["user_id", "-at", "-id"], name="access_user_idx"),
        ]
        permissions = [
            ("manage_privacy", "Can erase customers, download their data, read the access log"),
        ]

    def __str__(self):
        return f"{self.at:%Y-%m-%d %H:%M} {self.username} {self.action} {self.customer_id}"

    @property
    def detail_items(self) -> list[tuple[str, object]]:
        """`detail` as (label, value) pairs in the page's language."""
        return [(DETAIL_LABELS.get(key, key), value) for key, value in self.detail.items()]
