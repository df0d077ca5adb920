from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _


class SubscriptionStatus(models.TextChoices):
    ACTIVE = "active", _("Active")
    # The push service answered 404/410: the browser dropped the subscription.
    EXPIRED = "expired", _("Expired")
    # The customer turned notifications off on the storefront.
    UNSUBSCRIBED = "unsubscribed", _("Unsubscribed")


class PushSubscription(models.Model):
    """One browser or device of a customer that accepted the shop's notifications."""

    customer = models.ForeignKey(
        "clients.Customer", on_delete=models.CASCADE, related_name="push_subscriptions"
    )
    endpoint = models.CharField(max_length=1024, unique=True)
    # The browser's P-256 public key and authentication secret, base64url as toJSON() gives them.
    p256dh = models.CharField(max_length=100)
    auth = models.CharField(max_length=50)
    user_agent = models.CharField(max_length=300, blank=True)
    status = models.CharField(
        max_length=20, choices=SubscriptionStatus.choices, default=SubscriptionStatus.ACTIVE
    )
    created_at = models.DateTimeField()
    last_success_at = models.DateTimeField(null=True, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["customer", "status"])]

    def __str__(self):
        return f"{self.customer_id}: {self.endpoint[:60]}"

    @property
    def is_active(self) -> bool:
        return self.status == SubscriptionStatus.ACTIVE

    def as_subscription_info(self) -> dict:
        return {"endpoint": self.endpoint, "keys": {"p256dh": self.p256dh, "auth": self.auth}}


class CampaignStatus(models.TextChoices):
    SCHEDULED = "scheduled", _("Scheduled")
    SENDING = "sending", _("Sending")
    SENT = "sent", _("Sent")
    CANCELLED = "cancelled", _("Cancelled")
    # The audience could not be resolved when the campaign started (the reason is stored).
    FAILED = "failed", _("Failed")


class Urgency(models.TextChoices):
    VERY_LOW = "very-low", _("Very low (only when charging and on Wi-Fi)")
    LOW = "low", _("Low")
    NORMAL = "normal", _("Normal")
    HIGH = "high", _("High (wakes the device)")


# How long push services keep a message for an offline device (the TTL header).
TTL_CHOICES = [
    (3600, _("1 hour")),
    (6 * 3600, _("6 hours")),
    (86400, _("1 day")),
    (3 * 86400, _("3 days")),
    (7 * 86400, _("1 week")),
    (28 * 86400, _("4 weeks (the longest push services keep a message)")),
]


class AudienceKind(models.TextChoices):
    SELECTED = "selected", _("Selected customers")
    ALL = "all", _("All push-accepting customers")
    FILTERED = "filtered", _("Customers matching the search and filters")


class Campaign(models.Model):
    """A push notification sent (or to be sent) to an audience taken from the Clients/Leads tabs."""

    title = models.CharField(max_length=120)
    body = models.TextField("message")
    # Empty: a click opens the shop's home page (the service worker's origin), uncounted.
    link = models.URLField("link opened on click", max_length=1000, blank=True)
    icon = models.URLField("icon URL", max_length=1000, blank=True)
    image = models.URLField("image URL", max_length=1000, blank=True)
    ttl = models.PositiveIntegerField("time to live (seconds)", default=86400)
    urgency = models.CharField(max_length=10, choices=Urgency.choices, default=Urgency.NORMAL)

    # The audience as the admin chose it; resolved again when the campaign starts sending.
    audience_tab = models.CharField(max_length=10)
    audience_kind = models.CharField(max_length=10, choices=AudienceKind.choices)
    audience_ids = models.JSONField(default=list, blank=True)
    audience_query = models.TextField(blank=True)

    status = models.CharField(
        max_length=10, choices=CampaignStatus.choices, default=CampaignStatus.SCHEDULED
    )
    error = models.TextField(blank=True)
    # Where the back office is reachable from the customers' browsers (for click links).
    public_base_url = models.CharField(max_length=300)
    created_at = models.DateTimeField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    send_at = models.DateTimeField(db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    cancelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The one-time token of the compose form that created the campaign: the same form posted
    # again (Back then Send, a replayed request) finds this campaign instead of sending twice.
    # Empty for campaigns created before the token existed (or by scripts), never unique then.
    send_token = models.CharField(max_length=64, blank=True, default="")

    # --- Denormalized counters ---------------------------------------------------------------
    # The history and the progress bar read these instead of counting up to hundreds of
    # thousands of delivery rows per campaign on every poll. They are written only by
    # notifications/services.py and notifications/delivery.py in the transaction that changes
    # the delivery rows; `manage.py rebuild_push_stats` recomputes them and reports drift.
    customers_count = models.PositiveIntegerField("customers", default=0)
    recipients = models.PositiveIntegerField("devices", default=0)
    delivered = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    expired = models.PositiveIntegerField(default=0)
    unknown = models.PositiveIntegerField(default=0)
    clicks = models.PositiveIntegerField(default=0)

    COUNTERS = ("recipients", "delivered", "failed", "expired", "unknown", "clicks")

    class Meta:
        permissions = [
            ("send_campaign", "Can create, schedule, send and cancel push campaigns"),
        ]
        indexes = [models.Index(fields=["-created_at", "-id"])]
        constraints = [
            models.UniqueConstraint(
                fields=["send_token"],
                condition=~models.Q(send_token=""),
                name="campaign_send_token_unique",
            )
        ]

    def __str__(self):
        return self.title

    def get_absolute_url(self):
        return reverse("notifications:campaign-detail", args=[self.pk])

    @property
    def done(self) -> int:
        return self.delivered + self.failed + self.expired + self.unknown

    @property
    def progress_percent(self) -> int:
        if self.status == CampaignStatus.SENT:
            return 100
        if not self.recipients:
            return 0
        return min(100, self.done * 100 // self.recipients)

    @property
    def click_rate(self) -> float | None:
        return self.clicks / self.delivered if self.delivered and self.link else None

    @property
    def ttl_label(self) -> str:
        return dict(TTL_CHOICES).get(self.ttl, gettext("%(ttl)d seconds") % {"ttl": self.ttl})

    @property
    def is_cancellable(self) -> bool:
        """Scheduled, or sending (what has not been sent yet is then not sent)."""
        return self.status in (CampaignStatus.SCHEDULED, CampaignStatus.SENDING)

    @property
    def audience_label(self) -> str:
        tab = {"clients": gettext("Clients"), "leads": gettext("Leads")}.get(
            self.audience_tab, self.audience_tab
        )
        if self.audience_kind == AudienceKind.SELECTED:
            return gettext("%(tab)s: %(count)d selected") % {
                "tab": tab,
                "count": len(self.audience_ids),
            }
        if self.audience_kind == AudienceKind.FILTERED:
            return gettext("%(tab)s: search and filters") % {"tab": tab}
        return gettext("%(tab)s: all") % {"tab": tab}


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    # Taken by a worker for its next wave (until claimed_until) but not written yet: if the
    # worker dies, the row goes back to pending when the lease passes and is sent later.
    CLAIMED = "claimed", _("Being prepared")
    # Committed as written by a worker right before its request left (until claimed_until):
    # if the worker dies, the row's outcome is unknown and it is never sent again.
    SENDING = "sending", _("Sending")
    SENT = "sent", _("Delivered")
    FAILED = "failed", _("Failed")
    EXPIRED = "expired", _("Subscription expired")
    # A worker stopped while the request was on the wire: it may or may not have arrived,
    # and it is not sent again so that no one gets the campaign twice.
    UNKNOWN = "unknown", _("Outcome unknown")


OPEN_DELIVERY_STATUSES = (DeliveryStatus.PENDING, DeliveryStatus.CLAIMED, DeliveryStatus.SENDING)

FINAL_DELIVERY_STATUSES = (
    DeliveryStatus.SENT,
    DeliveryStatus.FAILED,
    DeliveryStatus.EXPIRED,
    DeliveryStatus.UNKNOWN,
)


class Delivery(models.Model):
    """The campaign for one subscription: created when the campaign starts, one row per pair."""

    # No index of its own: delivery_by_status and the unique (campaign, subscription)
    # both start with it, and every index is written again by each non-HOT update of a row.
    campaign = models.ForeignKey(
        Campaign, on_delete=models.CASCADE, related_name="deliveries", db_index=False
    )
    subscription = models.ForeignKey(
        PushSubscription, on_delete=models.CASCADE, related_name="deliveries"
    )
    batch = models.PositiveIntegerField()
    status = models.CharField(
        max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # Which worker run claimed the row, and until when the claim holds (see delivery.py).
    claim = models.CharField(max_length=32, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=300, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    clicked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "subscription"], name="delivery_once_per_subscription"
            )
        ]
        indexes = [
            # Every read of a campaign's rows by status: the claim (pending rows of a batch,
            # in id order, so it stops at the wave's size), the mark and the record (the few
            # claimed and sending rows), the sweep, the counts. A full index, not a partial
            # one on open rows: a partial index is empty whenever PostgreSQL last analyzed
            # the table between campaigns, so the planner takes it for free and scanned it
            # whole (every open row of the campaign) at every wave.
            models.Index(fields=["campaign", "status", "batch", "id"], name="delivery_by_status"),
            # The lists' "opened a push" filter (segments/filters.py): whose subscriptions
            # were ever clicked, without reading the unclicked majority of deliveries.
            models.Index(
                fields=["subscription"],
                name="delivery_clicked",
                condition=Q(clicked_at__isnull=False),
            ),
        ]

    def __str__(self):
        return f"campaign {self.campaign_id} → subscription {self.subscription_id}"
