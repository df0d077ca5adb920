"""Reads for the push pages, shaped for what they show."""

from django.db.models import Count, QuerySet

from clients.models import Customer
from clients.selectors import customer_audience
from notifications.models import Campaign, Delivery, PushSubscription, SubscriptionStatus


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
