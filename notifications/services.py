"""Every change to push subscriptions and campaigns goes through here."""

from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone

from clients.models import AuditAction, Customer
from clients.services import audit_record
from notifications.conf import push_setting
from notifications.models import (
    AudienceKind,
    Campaign,
    CampaignStatus,
    Delivery,
    DeliveryStatus,
    PushSubscription,
    SubscriptionStatus,
)
from notifications.selectors import audience_resolve

# --- Subscriptions and the customers' opt-in ------------------------------------------------


def _opt_in_refresh(customer_ids) -> None:
    """Make Customer.push_opt_in exact for these customers, auditing each change."""
    ids = sorted(set(customer_ids))
    if not ids:
        return
    active = PushSubscription.objects.filter(
        customer=OuterRef("pk"), status=SubscriptionStatus.ACTIVE
    )
    # Locking in id order keeps concurrent refreshes from deadlocking.
    customers = list(
        Customer.objects.select_for_update()
        .filter(pk__in=ids)
        .order_by("pk")
        .annotate(has_active=Exists(active))
        .only("pk", "push_opt_in")
    )
    changed = [c for c in customers if c.push_opt_in != c.has_active]
    for customer in changed:
        before = customer.push_opt_in
        customer.push_opt_in = customer.has_active
        audit_record(
            customer=customer,
            actor=None,
            action=AuditAction.PUSH_OPT_IN,
            changes={"push_opt_in": [before, customer.push_opt_in]},
        )
    if changed:
        Customer.objects.bulk_update(changed, ["push_opt_in"])


@transaction.atomic
def subscription_save(
    *, customer: Customer, endpoint: str, p256dh: str, auth: str, user_agent: str = ""
) -> PushSubscription:
    """Store a browser's subscription for a customer (or refresh it) and opt the customer in."""
    now = timezone.now()
    subscription = PushSubscription.objects.select_for_update().filter(endpoint=endpoint).first()
    affected = {customer.pk}
    if subscription is None:
        subscription = PushSubscription.objects.create(
            customer=customer,
            endpoint=endpoint,
            p256dh=p256dh,
            auth=auth,
            user_agent=user_agent[:300],
            created_at=now,
        )
    else:
        # The same browser, maybe now logged in as another customer of the shop.
        affected.add(subscription.customer_id)
        subscription.customer = customer
        subscription.p256dh = p256dh
        subscription.auth = auth
        subscription.user_agent = user_agent[:300]
        subscription.status = SubscriptionStatus.ACTIVE
        subscription.consecutive_failures = 0
        subscription.ended_at = None
        subscription.save()
    _opt_in_refresh(affected)
    return subscription


@transaction.atomic
def subscription_remove(*, endpoint: str, customer: Customer | None = None) -> bool:
    """The customer turned notifications off in a browser; returns whether one was active."""
    subscriptions = PushSubscription.objects.select_for_update().filter(
        endpoint=endpoint, status=SubscriptionStatus.ACTIVE
    )
    if customer is not None:
        subscriptions = subscriptions.filter(customer=customer)
    subscription = subscriptions.first()
    if subscription is None:
        return False
    subscription.status = SubscriptionStatus.UNSUBSCRIBED
    subscription.ended_at = timezone.now()
    subscription.save(update_fields=["status", "ended_at"])
    _opt_in_refresh([subscription.customer_id])
    return True


@transaction.atomic
def subscription_replace(
    *, old_endpoint: str, old_auth: str, endpoint: str, p256dh: str, auth: str
) -> PushSubscription | None:
    """The browser renewed its subscription (pushsubscriptionchange); None if unknown.

    Knowing the old subscription's authentication secret proves it is the same browser.
    """
    old = PushSubscription.objects.select_for_update().filter(endpoint=old_endpoint).first()
    if old is None or old.auth != old_auth:
        return None
    customer = old.customer
    if old_endpoint != endpoint:
        old.status = SubscriptionStatus.UNSUBSCRIBED
        old.ended_at = timezone.now()
        old.save(update_fields=["status", "ended_at"])
    return subscription_save(
        customer=customer, endpoint=endpoint, p256dh=p256dh, auth=auth, user_agent=old.user_agent
    )


@transaction.atomic
def subscriptions_expire(*, subscription_ids, at: datetime | None = None) -> int:
    """The push service said these subscriptions are gone (404/410): stop counting them."""
    ids = sorted(set(subscription_ids))
    subscriptions = PushSubscription.objects.filter(pk__in=ids, status=SubscriptionStatus.ACTIVE)
    customer_ids = list(subscriptions.values_list("customer_id", flat=True))
    count = subscriptions.update(status=SubscriptionStatus.EXPIRED, ended_at=at or timezone.now())
    _opt_in_refresh(customer_ids)
    return count


def subscriptions_record_results(*, ok, failed, at: datetime) -> None:
    """Keep each subscription's health: last success, consecutive failures."""
    if ok:
        PushSubscription.objects.filter(pk__in=ok).update(
            last_success_at=at, consecutive_failures=0
        )
    if failed:
        PushSubscription.objects.filter(pk__in=failed).update(
            consecutive_failures=F("consecutive_failures") + 1
        )


# --- Campaigns -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Audience:
    """Who a campaign goes to, as chosen on the Clients or Leads tab."""

    tab: str
    kind: str
    ids: tuple[int, ...] = ()
    query: str = ""


@dataclass(frozen=True)
class Message:
    title: str
    body: str
    link: str
    icon: str = ""
    image: str = ""
    ttl: int = 86400
    urgency: str = "normal"


@transaction.atomic
def campaign_create(
    *,
    actor,
    audience: Audience,
    message: Message,
    send_at: datetime | None,
    public_base_url: str,
) -> Campaign:
    """Create a campaign that starts now (send_at None) or at send_at, in the background."""
    from notifications.tasks import start_campaign

    audience_resolve(audience)  # raises ValueError for an invalid audience: nothing is stored
    now = timezone.now()
    campaign = Campaign.objects.create(
        title=message.title,
        body=message.body,
        link=message.link,
        icon=message.icon,
        image=message.image,
        ttl=message.ttl,
        urgency=message.urgency,
        audience_tab=audience.tab,
        audience_kind=audience.kind,
        audience_ids=list(audience.ids) if audience.kind == AudienceKind.SELECTED else [],
        audience_query=audience.query if audience.kind == AudienceKind.FILTERED else "",
        status=CampaignStatus.SCHEDULED,
        public_base_url=public_base_url,
        created_at=now,
        created_by=actor,
        send_at=send_at or now,
    )
    task = start_campaign
    if send_at is not None and send_at > now:
        if not task.get_backend().supports_defer:
            raise ValueError("The task backend cannot run tasks later; send it now instead.")
        task = task.using(run_after=send_at)
    transaction.on_commit(lambda: task.enqueue(campaign.pk))
    return campaign


@transaction.atomic
def campaign_cancel(*, campaign: Campaign, actor) -> Campaign:
    """Cancel a scheduled campaign; raises ValueError once it has started."""
    campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
    if campaign.status != CampaignStatus.SCHEDULED:
        raise ValueError(f"The campaign is {campaign.get_status_display().lower()}: too late.")
    campaign.status = CampaignStatus.CANCELLED
    campaign.cancelled_at = timezone.now()
    campaign.cancelled_by = actor
    campaign.save(update_fields=["status", "cancelled_at", "cancelled_by"])
    return campaign


def campaign_start(*, campaign_id: int) -> list[int]:
    """Freeze the audience into delivery rows and return the batch numbers to send.

    Runs in the worker when the campaign is due; safe to run twice (only a scheduled
    campaign starts).
    """
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().filter(pk=campaign_id).first()
        if campaign is None or campaign.status != CampaignStatus.SCHEDULED:
            return []
        if campaign.send_at > timezone.now():
            return []  # enqueued early by hand; the scheduled task will start it
        audience = Audience(
            tab=campaign.audience_tab,
            kind=campaign.audience_kind,
            ids=tuple(campaign.audience_ids),
            query=campaign.audience_query,
        )
        try:
            customers = audience_resolve(audience)
        except ValueError as exc:
            campaign.status = CampaignStatus.FAILED
            campaign.error = str(exc)
            campaign.finished_at = timezone.now()
            campaign.save(update_fields=["status", "error", "finished_at"])
            return []
        subscription_ids = (
            PushSubscription.objects.filter(
                customer__in=customers.values("pk"), status=SubscriptionStatus.ACTIVE
            )
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        batch_size = push_setting("PUSH_BATCH_SIZE")
        rows, recipients = [], 0
        for subscription_id in subscription_ids.iterator(chunk_size=5000):
            rows.append(
                Delivery(
                    campaign_id=campaign.pk,
                    subscription_id=subscription_id,
                    batch=recipients // batch_size,
                )
            )
            recipients += 1
            if len(rows) >= 5000:
                Delivery.objects.bulk_create(rows)
                rows = []
        Delivery.objects.bulk_create(rows)
        campaign.customers_count = customers.count()
        campaign.recipients = recipients
        campaign.status = CampaignStatus.SENDING
        campaign.started_at = timezone.now()
        fields = ["customers_count", "recipients", "status", "started_at"]
        if not recipients:
            campaign.status = CampaignStatus.SENT
            campaign.finished_at = campaign.started_at
            fields.append("finished_at")
        campaign.save(update_fields=fields)
    return list(range((recipients + batch_size - 1) // batch_size))


@transaction.atomic
def campaign_finish_if_done(*, campaign_id: int) -> bool:
    """Mark a sending campaign sent once every delivery has an outcome."""
    campaign = Campaign.objects.select_for_update().filter(pk=campaign_id).first()
    if campaign is None or campaign.status != CampaignStatus.SENDING:
        return False
    open_rows = Delivery.objects.filter(
        campaign_id=campaign_id, status__in=[DeliveryStatus.PENDING, DeliveryStatus.SENDING]
    )
    if open_rows.exists():
        return False
    campaign.status = CampaignStatus.SENT
    campaign.finished_at = timezone.now()
    campaign.save(update_fields=["status", "finished_at"])
    return True


def click_record(*, campaign_id: int, subscription_id: int) -> Campaign | None:
    """Count a notification's first click; returns the campaign (None if unknown)."""
    with transaction.atomic():
        first = Delivery.objects.filter(
            campaign_id=campaign_id, subscription_id=subscription_id, clicked_at__isnull=True
        ).update(clicked_at=timezone.now())
        if first:
            Campaign.objects.filter(pk=campaign_id).update(clicks=F("clicks") + 1)
    return Campaign.objects.filter(pk=campaign_id).only("pk", "link").first()
