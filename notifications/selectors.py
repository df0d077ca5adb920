"""Reads for the push pages, shaped for what they show."""

from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count, F, Q, QuerySet, Sum

from clients.models import Customer
from clients.selectors import customer_audience
from notifications.models import (
    AudienceKind,
    Campaign,
    CampaignStatus,
    Delivery,
    PushSubscription,
    SubscriptionStatus,
)
from orders.models import FINALIZED_STATUSES, Order, OrderStatus


def audience_resolve(audience) -> QuerySet[Customer]:
    """The push-accepting customers of an audience, re-filtered on the server.

    Raises ValueError with a message for the admin when the audience is not valid.
    """
    return customer_audience(
        tab=audience.tab, audience=audience.kind, ids=list(audience.ids), query=audience.query
    )


def audience_counts(audience) -> dict[str, int]:
    """How many customers and devices (active subscriptions) an audience reaches now."""
    customers = audience_resolve(audience)
    devices = PushSubscription.objects.filter(
        customer__in=customers.values("pk"), status=SubscriptionStatus.ACTIVE
    ).count()
    return {"customers": customers.count(), "devices": devices}


def campaign_twin(*, actor, audience, message, since) -> Campaign | None:
    """The newest campaign `actor` created since `since` with this message for this audience
    (cancelled ones apart): what sending the compose form again would repeat, whatever its
    one-time token (a browser that reloads the form on Back gives it a new one)."""
    twins = Campaign.objects.filter(
        created_by=actor,
        created_at__gte=since,
        title=message.title,
        body=message.body,
        link=message.link,
        audience_tab=audience.tab,
        audience_kind=audience.kind,
        audience_query=audience.query if audience.kind == AudienceKind.FILTERED else "",
    ).exclude(status=CampaignStatus.CANCELLED)
    ids = list(audience.ids) if audience.kind == AudienceKind.SELECTED else []
    # The ids compared in Python: a JSON list's equality differs between the databases.
    for campaign in twins.order_by("-created_at", "-id").only("id", "audience_ids", "created_at"):
        if campaign.audience_ids == ids:
            return campaign
    return None


def campaign_with_send_token(token: str) -> Campaign | None:
    """The campaign a compose form's one-time token created, if any."""
    return Campaign.objects.filter(send_token=token).only("id").first() if token else None


def campaign_list() -> QuerySet[Campaign]:
    """The campaign history, newest first, with the columns the list shows."""
    return Campaign.objects.order_by("-created_at", "-id").defer(
        "body", "audience_ids", "audience_query", "error"
    )


def campaign_detail() -> QuerySet[Campaign]:
    return Campaign.objects.select_related("created_by", "cancelled_by")


def campaign_answers(*, campaign_id: int) -> list[dict]:
    """How the push services answered, by delivery status and HTTP status, for the detail page."""
    return list(
        Delivery.objects.filter(campaign_id=campaign_id)
        .values("status", "last_status_code")
        .annotate(count=Count("pk"))
        .order_by("status", "last_status_code")
    )


def campaign_errors(*, campaign_id: int, limit: int = 10) -> list[dict]:
    """The most frequent errors of a campaign's failed deliveries."""
    return list(
        Delivery.objects.filter(campaign_id=campaign_id)
        .exclude(error="")
        .values("error")
        .annotate(count=Count("pk"))
        .order_by("-count", "error")[:limit]
    )


def customer_subscriptions(*, customer_id: int) -> QuerySet[PushSubscription]:
    return PushSubscription.objects.filter(customer_id=customer_id).order_by("-created_at", "-id")


@dataclass(frozen=True)
class Earnings:
    """What a campaign earned (notifications/attribution.py says which orders it is credited).

    `orders`: its finalized orders (paid, fulfilled or refunded); `revenue`: their total less
    what was refunded (as the customers' "total spent"); `pending`: orders awaiting payment.
    """

    orders: int = 0
    revenue: Decimal = Decimal("0.00")
    pending: int = 0
    # The campaign's clicks (first click per device) and recipients (customers sent to).
    clicks: int = 0
    recipients: int = 0

    @property
    def conversion_percent(self) -> Decimal | None:
        """Orders per 100 clicks (None without a click)."""
        if not self.clicks:
            return None
        return (Decimal(self.orders) * 100 / self.clicks).quantize(Decimal("0.1"))

    @property
    def revenue_per_thousand(self) -> Decimal | None:
        """Revenue per 1,000 recipients (None before anyone was sent it)."""
        if not self.recipients:
            return None
        return (self.revenue * 1000 / self.recipients).quantize(Decimal("0.01"))


def campaign_earnings(campaigns) -> dict[int, Earnings]:
    """Each campaign's Earnings, in one aggregate over the orders credited to them (the
    partial index order_push_campaign_idx: PostgreSQL reads it without the table)."""
    campaigns = list(campaigns)
    rows = (
        Order.objects.filter(
            push_campaign_id__in=[c.pk for c in campaigns],
            status__in=[*FINALIZED_STATUSES, OrderStatus.PENDING],
        )
        .values("push_campaign_id")
        .annotate(
            orders=Count("pk", filter=Q(status__in=FINALIZED_STATUSES)),
            revenue=Sum(F("total") - F("refunded_amount"), filter=Q(status__in=FINALIZED_STATUSES)),
            pending=Count("pk", filter=Q(status=OrderStatus.PENDING)),
        )
        .order_by()
    )
    found = {row["push_campaign_id"]: row for row in rows} if campaigns else {}
    result = {}
    for campaign in campaigns:
        row = found.get(campaign.pk, {})
        result[campaign.pk] = Earnings(
            orders=row.get("orders", 0),
            revenue=(row.get("revenue") or Decimal("0")).quantize(Decimal("0.01")),
            pending=row.get("pending", 0),
            clicks=campaign.clicks,
            recipients=campaign.customers_count,
        )
    return result


def campaign_orders(*, campaign_id: int, limit: int = 20) -> QuerySet[Order]:
    """The latest orders credited to a campaign, with their customers' names, for its page."""
    return (
        Order.objects.filter(push_campaign_id=campaign_id)
        .select_related("customer")
        .only(
            "id",
            "number",
            "placed_at",
            "status",
            "currency",
            "total",
            "refunded_amount",
            "customer__id",
            "customer__first_name",
            "customer__last_name",
            "customer__email",
            "customer__erased_at",
        )
        .order_by("-placed_at", "-id")[:limit]
    )
