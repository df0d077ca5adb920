"""Push subscriptions of an erased customer: the rows stay (the campaigns' delivery rows and
counters refer to them) with the endpoint, keys and browser removed, never active again."""

from django.db.models import CharField, DateTimeField, Value
from django.db.models.functions import Cast, Coalesce, Concat

from clients.models import Customer
from notifications.models import Delivery, PushSubscription, SubscriptionStatus
from privacy.registry import Erasure, register
from privacy.serialize import rows


def erase(erasure: Erasure) -> None:
    subscriptions = PushSubscription.objects.filter(customer__in=erasure.customers)
    subscriptions.update(
        # Unique and not a URL: nothing can deliver to it, and no browser can take it over.
        endpoint=Concat(Value("erased:"), Cast("pk", CharField())),
        p256dh="",
        auth="",
        user_agent="",
        status=SubscriptionStatus.UNSUBSCRIBED,
        ended_at=Coalesce("ended_at", Value(erasure.at, output_field=DateTimeField())),
    )
    # A push service's error message may quote the endpoint.
    Delivery.objects.filter(subscription__customer__in=erasure.customers).exclude(error="").update(
        error=""
    )


def export(customer: Customer) -> dict[str, list[dict]]:
    return {
        # Without the keys (p256dh, auth): they are the browser's secrets.
        "push_subscriptions": rows(
            PushSubscription.objects.filter(customer=customer).order_by("created_at", "pk"),
            "id",
            "endpoint",
            "user_agent",
            "status",
            "created_at",
            "last_success_at",
            "ended_at",
        ),
        "campaigns_received": rows(
            Delivery.objects.filter(subscription__customer=customer)
            .exclude(sent_at=None)
            .order_by("sent_at", "pk"),
            "sent_at",
            "clicked_at",
            "status",
            subscription_id="subscription_id",
            campaign_id="campaign_id",
            campaign_title="campaign__title",
            campaign_body="campaign__body",
            campaign_link="campaign__link",
        ),
    }


register("notifications", models=(PushSubscription, Delivery), erase=erase, export=export)
