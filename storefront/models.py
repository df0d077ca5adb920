"""The storefront API's own records: API keys, idempotency records, rate-limit windows, and
app launches (where customers come from)."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class Scope(models.TextChoices):
    """What an API key may do. Every key may also read what it writes."""

    READ = "read", _("Read customers, addresses, launches and orders")
    CUSTOMERS_WRITE = "customers:write", _("Create and update customers, addresses, launches")
    ORDERS_WRITE = "orders:write", _("Create orders and change their status")
    PUSH_WRITE = "push:write", _("Register and remove push subscriptions")


class ApiKey(models.Model):
    """A secret the shop's platform sends as `Authorization: Bearer <key>`.

    Only a SHA-256 digest of the key is stored (keys are 256 random bits, so a fast digest
    is enough: there is nothing to brute-force); the prefix is kept to show which key is
    which and to find the row before comparing digests in constant time.
    """

    name = models.CharField(_("name"), max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    digest = models.CharField(max_length=64)
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(_("created"))
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Written at most once a minute per key (storefront/auth.py), not on every call.
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name = _("API key")
        verbose_name_plural = _("API keys")
        permissions = [("manage_apikey", "Can create and revoke API keys")]

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class IdempotencyRecord(models.Model):
    """The first response to a POST sent with an `Idempotency-Key`, replayed for retries.

    `principal` is who sent it ("key:<id>" or "customer:<id>"): keys of different callers
    never collide. A call made in one transaction stores its record DONE with its work. A
    streamed call (the bulk import, which commits as it goes) holds its key RUNNING while it
    runs, renewing `started_at`; a RUNNING record not renewed for
    STOREFRONT_API_IDEMPOTENCY_LEASE seconds belongs to a process that died and may be taken
    over.
    """

    class State(models.TextChoices):
        RUNNING = "running"
        DONE = "done"

    principal = models.CharField(max_length=40)
    key = models.CharField(max_length=255)
    # SHA-256 of method, path and body: the same key with another request is refused.
    fingerprint = models.CharField(max_length=64)
    state = models.CharField(max_length=10, choices=State.choices, default=State.RUNNING)
    created_at = models.DateTimeField(db_index=True)
    started_at = models.DateTimeField()
    status_code = models.PositiveSmallIntegerField(null=True)
    content_type = models.CharField(max_length=100, blank=True)
    location = models.CharField(max_length=500, blank=True)
    body = models.BinaryField(default=b"")
    # "deflate" (zlib) for a streamed call's answer, which may be long; "" for a body as sent.
    encoding = models.CharField(max_length=10, blank=True, db_default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["principal", "key"], name="idempotency_unique_key")
        ]

    def __str__(self):
        return f"{self.principal} {self.key} ({self.state})"


class RateWindow(models.Model):
    """Calls counted in the current window for one caller (see storefront/ratelimit.py).

    One row per caller, incremented with one upsert per call: it lives in the database so
    the limit holds across gunicorn workers and machines without another service.
    """

    principal = models.CharField(max_length=40, primary_key=True)
    window_start = models.BigIntegerField()
    count = models.PositiveIntegerField()

    def __str__(self):
        return f"{self.principal}: {self.count} in window {self.window_start}"


class Platform(models.TextChoices):
    IOS = "ios", _("iOS app")
    ANDROID = "android", _("Android app")
    WEB = "web", _("Website")
    OTHER = "other", _("Other")


class Launch(models.Model):
    """The app was opened or the website visited: where from (UTM or referrer), on what.

    A launch may be anonymous (a visitor id only); launches of a visitor are linked to the
    customer when the visitor signs up or logs in (storefront/services.py).
    """

    customer = models.ForeignKey(
        "clients.Customer",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="launches",
        db_index=False,
    )
    visitor_id = models.CharField(max_length=64, blank=True)
    occurred_at = models.DateTimeField(_("time"))
    received_at = models.DateTimeField()
    source = models.CharField(_("source"), max_length=100, blank=True)
    medium = models.CharField(_("medium"), max_length=100, blank=True)
    campaign = models.CharField(_("campaign"), max_length=200, blank=True)
    referrer = models.CharField(_("referrer"), max_length=500, blank=True)
    platform = models.CharField(_("platform"), max_length=10, choices=Platform.choices)
    device = models.CharField(_("device"), max_length=100, blank=True)
    api_key = models.ForeignKey(
        ApiKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        indexes = [
            models.Index(fields=["customer", "-occurred_at", "-id"], name="launch_customer_idx"),
            models.Index(
                fields=["visitor_id"],
                condition=Q(customer__isnull=True) & ~Q(visitor_id=""),
                name="launch_anonymous_visitor_idx",
            ),
        ]

    def __str__(self):
        return f"{self.get_platform_display()} {self.source or '—'} / {self.medium or '—'}"
