"""Every change to push subscriptions and campaigns goes through here."""

import contextlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from clients.models import AuditAction, Customer
from clients.services import audit_record
from notifications.conf import push_setting
from notifications.models import (
    OPEN_DELIVERY_STATUSES,
    AudienceKind,
    Campaign,
    CampaignStatus,
    Delivery,
    DeliveryStatus,
    PushSubscription,
    SubscriptionStatus,
)
from notifications.selectors import audience_resolve, campaign_with_send_token
from privacy.models import ConsentSource
from privacy.services import consent_push_record

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
        consent_push_record(
            events=[(customer.pk, subscription.pk, True)], source=ConsentSource.BROWSER, at=now
        )
    else:
        # The consent ledger: the browser's grant for this customer, and its end for the
        # customer it belonged to before (if another).
        was_active = subscription.status == SubscriptionStatus.ACTIVE
        if was_active and subscription.customer_id != customer.pk:
            consent_push_record(
                events=[(subscription.customer_id, subscription.pk, False)],
                source=ConsentSource.STOREFRONT,
                at=now,
            )
        if not was_active or subscription.customer_id != customer.pk:
            consent_push_record(
                events=[(customer.pk, subscription.pk, True)],
                source=ConsentSource.BROWSER,
                at=now,
            )
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
    _subscriptions_limit(customer=customer, keep=subscription, now=now, lock=affected)
    _opt_in_refresh(affected)
    if len(affected) > 1:
        # The browser's clicks moved with it to the customer now logged in.
        customers_push_opened_refresh(sorted(affected))
    return subscription


def _subscriptions_limit(
    *, customer: Customer, keep: PushSubscription, now: datetime, lock
) -> None:
    """Replace the customer's oldest active subscriptions beyond the limit, auditing each."""
    limit = max(1, push_setting("PUSH_MAX_SUBSCRIPTIONS_PER_CUSTOMER"))
    # The customers' rows are the lock (in id order, as _opt_in_refresh takes them): two
    # browsers subscribing at once cannot both see room.
    list(Customer.objects.select_for_update().filter(pk__in=lock).order_by("pk").values("pk"))
    active = PushSubscription.objects.filter(customer=customer, status=SubscriptionStatus.ACTIVE)
    excess = active.count() - limit
    if excess <= 0:
        return
    oldest = list(active.exclude(pk=keep.pk).order_by("created_at", "pk")[:excess])
    PushSubscription.objects.filter(pk__in=[s.pk for s in oldest]).update(
        status=SubscriptionStatus.UNSUBSCRIBED, ended_at=now
    )
    consent_push_record(
        events=[(customer.pk, s.pk, False) for s in oldest], source=ConsentSource.REPLACED, at=now
    )
    for replaced in oldest:
        audit_record(
            customer=customer,
            actor=None,
            action=AuditAction.PUSH_SUBSCRIPTION_REPLACED,
            changes={
                "subscription": [replaced.pk, keep.pk],
                "status": [SubscriptionStatus.ACTIVE, SubscriptionStatus.UNSUBSCRIBED],
            },
        )


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
    consent_push_record(
        events=[(subscription.customer_id, subscription.pk, False)],
        source=ConsentSource.STOREFRONT,
        at=subscription.ended_at,
    )
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
        was_active = old.status == SubscriptionStatus.ACTIVE
        old.status = SubscriptionStatus.UNSUBSCRIBED
        old.ended_at = timezone.now()
        old.save(update_fields=["status", "ended_at"])
        if was_active:
            consent_push_record(
                events=[(customer.pk, old.pk, False)],
                source=ConsentSource.REPLACED,
                at=old.ended_at,
            )
    return subscription_save(
        customer=customer, endpoint=endpoint, p256dh=p256dh, auth=auth, user_agent=old.user_agent
    )


@transaction.atomic
def subscriptions_expire(*, subscription_ids, at: datetime | None = None) -> int:
    """The push service said these subscriptions are gone (404/410): stop counting them."""
    ids = sorted(set(subscription_ids))
    subscriptions = PushSubscription.objects.filter(pk__in=ids, status=SubscriptionStatus.ACTIVE)
    ended = list(subscriptions.select_for_update().values_list("customer_id", "pk"))
    customer_ids = [customer_id for customer_id, _ in ended]
    at = at or timezone.now()
    count = subscriptions.update(status=SubscriptionStatus.EXPIRED, ended_at=at)
    consent_push_record(
        events=[(customer_id, pk, False) for customer_id, pk in ended],
        source=ConsentSource.PUSH_SERVICE,
        at=at,
    )
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


class CampaignAlreadyCreated(Exception):
    """The compose form's one-time token was already used: `campaign` is what it created."""

    def __init__(self, campaign: Campaign):
        super().__init__(f"Campaign {campaign.pk} was already created with this token.")
        self.campaign = campaign


@transaction.atomic
def campaign_create(
    *,
    actor,
    audience: Audience,
    message: Message,
    send_at: datetime | None,
    public_base_url: str,
    can_defer: bool = True,
    send_token: str = "",
) -> Campaign:
    """Create a campaign that starts now (send_at None) or at send_at, in the background.

    Only stores it: `notifications.tasks.campaign_submit` calls this and enqueues the start
    once the transaction has committed (the tasks module is the one that enqueues).

    `send_token`, the compose form's one-time token, makes the creation happen at most once:
    a token already used raises CampaignAlreadyCreated with the campaign it created, and
    nothing is stored (so nothing is enqueued). The unique constraint decides, so two
    identical requests at the same moment also create one campaign.
    """
    if send_token:
        _campaign_check_token(send_token)
    if send_at is not None and send_at > timezone.now() and not can_defer:
        raise ValueError("The task backend cannot run tasks later; send it now instead.")
    audience_resolve(audience)  # raises ValueError for an invalid audience: nothing is stored
    now = timezone.now()
    fields = dict(
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
        send_token=send_token,
    )
    try:
        # A savepoint: the transaction stays usable after a concurrent twin won the race.
        with transaction.atomic():
            return Campaign.objects.create(**fields)
    except IntegrityError:
        if send_token:
            _campaign_check_token(send_token)
        raise


def _campaign_check_token(send_token: str) -> None:
    """Raise CampaignAlreadyCreated if a campaign was created with this form token."""
    campaign = campaign_with_send_token(send_token)
    if campaign is not None:
        raise CampaignAlreadyCreated(campaign)


# Why the deliveries a cancellation stopped were not sent (Delivery.error).
CANCELLED_ERROR = "Not sent: the campaign was cancelled."


@transaction.atomic
def campaign_cancel(*, campaign: Campaign, actor) -> Campaign:
    """Cancel a scheduled campaign, or stop one that is sending: what has not been sent is
    not sent. Raises ValueError once the campaign has finished.

    A sending campaign's pending deliveries are marked failed with CANCELLED_ERROR (and
    counted as failed, so the counters stay equal to the rows); deliveries already on the wire
    finish and are recorded by their worker, which then stops (delivery.batch_send sends only
    for a sending campaign) and settles anything that came back to pending
    (campaign_finish_if_done).
    """
    campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
    if campaign.status not in (CampaignStatus.SCHEDULED, CampaignStatus.SENDING):
        raise ValueError(f"The campaign is {campaign.get_status_display().lower()}: too late.")
    was_sending = campaign.status == CampaignStatus.SENDING
    campaign.status = CampaignStatus.CANCELLED
    campaign.cancelled_at = timezone.now()
    campaign.cancelled_by = actor
    campaign.save(update_fields=["status", "cancelled_at", "cancelled_by"])
    if was_sending:
        _deliveries_cancel_pending(campaign_id=campaign.pk)
        campaign.refresh_from_db(fields=["failed"])
    return campaign


def _deliveries_cancel_pending(*, campaign_id: int) -> int:
    """Mark a cancelled campaign's pending deliveries failed (never sent), counting them.

    Claimed rows too: a worker holds them but has not written them, and it cannot mark them
    sending any more (deliveries_mark_sending refuses once the campaign is not sending).
    """
    count = Delivery.objects.filter(
        campaign_id=campaign_id, status__in=[DeliveryStatus.PENDING, DeliveryStatus.CLAIMED]
    ).update(
        status=DeliveryStatus.FAILED,
        error=CANCELLED_ERROR,
        next_attempt_at=None,
        claim="",
        claimed_until=None,
    )
    if count:
        Campaign.objects.filter(pk=campaign_id).update(failed=F("failed") + count)
    return count


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
    if campaign is not None and campaign.status == CampaignStatus.CANCELLED:
        # Cancelled while this worker's requests were on the wire: those that came back to be
        # retried are not sent again.
        _deliveries_cancel_pending(campaign_id=campaign_id)
        return False
    if campaign is None or campaign.status != CampaignStatus.SENDING:
        return False
    open_rows = Delivery.objects.filter(campaign_id=campaign_id, status__in=OPEN_DELIVERY_STATUSES)
    if open_rows.exists():
        return False
    campaign.status = CampaignStatus.SENT
    campaign.finished_at = timezone.now()
    campaign.save(update_fields=["status", "finished_at"])
    return True


def _push_opened_sql() -> str:
    """Whether customer `c` clicked a push (a delivery to one of their subscriptions has a
    click): what Customer.push_opened stores. Served by the delivery_clicked index."""
    q = connection.ops.quote_name
    deliveries, subscriptions = q(Delivery._meta.db_table), q(PushSubscription._meta.db_table)
    return (
        f"EXISTS (SELECT 1 FROM {deliveries} d JOIN {subscriptions} s "
        "ON s.id = d.subscription_id WHERE s.customer_id = c.id AND d.clicked_at IS NOT NULL)"
    )


def customers_push_opened_refresh(customer_ids: list[int] | None = None) -> int:
    """Write Customer.push_opened from the deliveries, for these customers (every customer
    when None), only where it differs; returns how many rows were written."""
    customers = connection.ops.quote_name(Customer._meta.db_table)
    truth = _push_opened_sql()
    where, params = "", []
    if customer_ids is not None:
        customer_ids = [pk for pk in customer_ids if pk is not None]
        if not customer_ids:
            return 0
        where = "c.id IN (" + ", ".join(["%s"] * len(customer_ids)) + ") AND "
        params = customer_ids
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {customers} AS c SET push_opened = {truth} "
            f"WHERE {where}c.push_opened <> {truth}",
            params,
        )
        return cursor.rowcount


def customers_push_opened_mismatches() -> int:
    """How many customers' stored "opened a push" differs from their deliveries."""
    customers = connection.ops.quote_name(Customer._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT COUNT(*) FROM {customers} c WHERE c.push_opened <> " + _push_opened_sql()
        )
        return cursor.fetchone()[0]


def click_record(*, campaign_id: int, subscription_id: int) -> Campaign | None:
    """Count a notification's first click; returns the campaign (None if unknown). The
    subscription's customer is marked as having opened a push (Customer.push_opened)."""
    with transaction.atomic():
        first = Delivery.objects.filter(
            campaign_id=campaign_id, subscription_id=subscription_id, clicked_at__isnull=True
        ).update(clicked_at=timezone.now())
        if first:
            Campaign.objects.filter(pk=campaign_id).update(clicks=F("clicks") + 1)
            customer = PushSubscription.objects.filter(pk=subscription_id).values("customer_id")
            Customer.objects.filter(pk__in=customer, push_opened=False).update(push_opened=True)
    return Campaign.objects.filter(pk=campaign_id).only("pk", "link").first()


# --- Delivery rows ---------------------------------------------------------------------------
# Every write to Delivery rows during sending happens here; notifications/delivery.py decides
# (what to claim, what an answer means) and calls these. A row's life:
#
#   pending --claim--> claimed --mark sending (committed right before the write)--> sending
#   claimed --lease passes / worker stops--> pending      (it was never written: sent later)
#   sending --answer--> sent | expired | failed | pending (retry: the answer proved refusal)
#   sending --no complete answer, or lease passes--> unknown   (never sent again)
#
# The campaign's counters change in the same transaction as the rows they count.


@dataclass(frozen=True, slots=True)
class DeliveryToSend:
    """A claimed delivery with what sending it needs."""

    pk: int
    attempts: int
    subscription_id: int
    endpoint: str
    p256dh: str
    auth: str


@dataclass(frozen=True, slots=True)
class DeliveryOutcome:
    """What became of one claimed or written delivery (delivery.py decides it)."""

    pk: int
    subscription_id: int
    status: str  # a DeliveryStatus
    code: int | None = None
    error: str = ""
    retry_at: datetime | None = None
    # False for a 429, or a row held back by a 429 pause: not an attempt that counts.
    counts_as_attempt: bool = True


_COUNTER_OF = {
    DeliveryStatus.SENT: "delivered",
    DeliveryStatus.FAILED: "failed",
    DeliveryStatus.EXPIRED: "expired",
    DeliveryStatus.UNKNOWN: "unknown",
}


def _error_text(error: str) -> str:
    """An outcome's error as stored: PostgreSQL text cannot hold NUL, which a push service's
    answer body (quoted in the error) may contain; storing it would fail the whole wave."""
    return error[:300].replace("\x00", "\ufffd")


UNKNOWN_AFTER_CRASH = "The worker stopped while sending; not sent again to avoid a duplicate."


def _counters_add(campaign_id: int, counts: dict) -> None:
    changes = {
        _COUNTER_OF[status]: F(_COUNTER_OF[status]) + n
        for status, n in counts.items()
        if n and status in _COUNTER_OF
    }
    if changes:
        Campaign.objects.filter(pk=campaign_id).update(**changes)


@transaction.atomic
def deliveries_sweep(
    *, campaign_id: int, batch: int | None = None, give_up_at: datetime | None = None
) -> dict[str, int]:
    """Settle what dead workers left: expired claims go back to pending (they were never
    written), expired "sending" rows become unknown (they may have been), and once the
    campaign's retry window has closed (`give_up_at`) the rows still pending fail."""
    now = timezone.now()
    rows = Delivery.objects.filter(campaign_id=campaign_id)
    if batch is not None:
        rows = rows.filter(batch=batch)
    released = rows.filter(status=DeliveryStatus.CLAIMED, claimed_until__lt=now).update(
        status=DeliveryStatus.PENDING, claim="", claimed_until=None
    )
    unknown = rows.filter(status=DeliveryStatus.SENDING, claimed_until__lt=now).update(
        status=DeliveryStatus.UNKNOWN, error=UNKNOWN_AFTER_CRASH, claimed_until=None
    )
    failed = 0
    if give_up_at is not None and now >= give_up_at:
        failed = rows.filter(status=DeliveryStatus.PENDING).update(
            status=DeliveryStatus.FAILED,
            error="Not sent: the campaign's time for retries ran out (PUSH_RETRY_WINDOW).",
            next_attempt_at=None,
        )
    _counters_add(campaign_id, {DeliveryStatus.UNKNOWN: unknown, DeliveryStatus.FAILED: failed})
    return {"released": released, "unknown": unknown, "failed": failed}


def deliveries_claim(
    *, campaign_id: int, batch: int, size: int, lease: float, claim: str
) -> list[DeliveryToSend]:
    """Claim up to `size` due pending rows of a batch of a campaign that is still sending."""
    now = timezone.now()
    if connection.vendor == "postgresql":
        # One statement (its own transaction): select, lock, claim and read what sending
        # needs, rather than four round trips and an ORM compilation per wave.
        with connection.cursor() as cursor:
            cursor.execute(
                _PG_CLAIM,
                {
                    "campaign": campaign_id,
                    "batch": batch,
                    "now": now,
                    "size": size,
                    "claim": claim,
                    "until": now + timedelta(seconds=lease),
                },
            )
            return [DeliveryToSend(*values) for values in cursor.fetchall()]
    with transaction.atomic():
        due = (
            Delivery.objects.filter(
                campaign_id=campaign_id,
                # Re-checked at every claim: a cancelled campaign stops here.
                campaign__status=CampaignStatus.SENDING,
                batch=batch,
                status=DeliveryStatus.PENDING,
            )
            .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
            .order_by("pk")
            # On PostgreSQL two workers skip each other's rows; the status condition of the
            # update below makes the claim exclusive on every database.
            .select_for_update(skip_locked=True, of=("self",))
            .values_list(
                "pk",
                "attempts",
                "subscription_id",
                "subscription__endpoint",
                "subscription__p256dh",
                "subscription__auth",
            )[:size]
        )
        rows = [DeliveryToSend(*values) for values in due]
        if not rows:
            return []
        ids = [row.pk for row in rows]
        claimed = Delivery.objects.filter(pk__in=ids, status=DeliveryStatus.PENDING).update(
            status=DeliveryStatus.CLAIMED,
            claim=claim,
            claimed_until=now + timedelta(seconds=lease),
        )
        if claimed != len(ids):
            # Another worker took some between the read and the update (SQLite has no
            # row locks): keep only what this claim holds.
            held = set(
                Delivery.objects.filter(pk__in=ids, claim=claim).values_list("pk", flat=True)
            )
            rows = [row for row in rows if row.pk in held]
    return rows


def deliveries_release(*, claim: str, ids, retry_at: datetime | None = None) -> int:
    """Give claimed rows that were not written back to pending (optionally not before retry_at)."""
    return Delivery.objects.filter(
        pk__in=list(ids), claim=claim, status=DeliveryStatus.CLAIMED
    ).update(status=DeliveryStatus.PENDING, claim="", claimed_until=None, next_attempt_at=retry_at)


def deliveries_record(
    *, campaign_id: int, outcomes: list[DeliveryOutcome], claims: tuple[str, ...]
) -> None:
    """Store outcomes, the subscriptions' health and the campaign's counters, in one
    transaction; only rows that one of `claims` still holds (claimed or sending) change."""
    if not outcomes:
        return
    now = timezone.now()
    if connection.vendor == "postgresql":
        _deliveries_record_pg(campaign_id=campaign_id, outcomes=outcomes, claims=claims, now=now)
        return
    with transaction.atomic():
        _deliveries_record_orm(campaign_id=campaign_id, outcomes=outcomes, claims=claims, now=now)


def _deliveries_record_orm(*, campaign_id, outcomes, claims, now) -> None:
    groups: dict[tuple, list[int]] = {}
    ok_subs, failed_subs, expired_subs = [], [], []
    for outcome in outcomes:
        key = (
            outcome.status,
            outcome.code,
            _error_text(outcome.error),
            outcome.retry_at,
            outcome.counts_as_attempt,
        )
        groups.setdefault(key, []).append(outcome.pk)
        if outcome.status == DeliveryStatus.SENT:
            ok_subs.append(outcome.subscription_id)
        elif outcome.status == DeliveryStatus.EXPIRED:
            expired_subs.append(outcome.subscription_id)
        elif outcome.counts_as_attempt:
            failed_subs.append(outcome.subscription_id)
    counts: dict[str, int] = {}
    open_statuses = [DeliveryStatus.CLAIMED, DeliveryStatus.SENDING]
    for (status, code, error, when, counted), ids in groups.items():
        updated = Delivery.objects.filter(
            pk__in=ids, claim__in=claims, status__in=open_statuses
        ).update(
            status=status,
            last_status_code=code,
            error=error,
            next_attempt_at=when,
            claimed_until=None,
            attempts=F("attempts") + 1 if counted else F("attempts"),
            sent_at=now if status == DeliveryStatus.SENT else None,
        )
        counts[status] = counts.get(status, 0) + updated
    subscriptions_record_results(ok=ok_subs, failed=failed_subs, at=now)
    if expired_subs:
        subscriptions_expire(subscription_ids=expired_subs, at=now)
    _counters_add(campaign_id, counts)


def deliveries_mark_sending(
    *, campaign_id: int, claim: str, ids: list[int], lease: float
) -> set[int]:
    """Mark claimed rows "sending" right before they are written, in a transaction of its own
    that the caller commits before writing them; returns the ids that may be written.

    None once the campaign is no longer sending (cancelled), and only rows this claim still
    holds (a claim whose lease passed may have been given to another worker). The campaign's
    row is locked until the commit, so a concurrent campaign_cancel comes either before (and
    nothing is marked) or after (and these rows are on the wire).
    """
    if not ids:
        return set()
    until = timezone.now() + timedelta(seconds=lease)
    if connection.vendor == "postgresql":
        # One statement: its own transaction, committed when it returns.
        with connection.cursor() as cursor:
            cursor.execute(
                _PG_MARK,
                {"campaign": campaign_id, "ids": _pg_id_array(ids), "claim": claim, "until": until},
            )
            return {row[0] for row in cursor.fetchall()}
    with transaction.atomic():
        sending = Campaign.objects.filter(pk=campaign_id, status=CampaignStatus.SENDING)
        if not sending.update(status=F("status")):
            return set()
        held = Delivery.objects.filter(pk__in=ids, claim=claim, status=DeliveryStatus.CLAIMED)
        if held.update(status=DeliveryStatus.SENDING, claimed_until=until) == len(ids):
            return set(ids)
        return set(
            Delivery.objects.filter(
                pk__in=ids, claim=claim, status=DeliveryStatus.SENDING
            ).values_list("pk", flat=True)
        )


# PostgreSQL's versions of the three statements every wave runs (claim, mark, record), each
# its own transaction. The ORM's `pk__in` writes one placeholder per id and compiles the query
# each time: about 0.8 ms of CPU per statement of 100 ids here, against 0.14 ms for
# `= ANY(array)` (and PostgreSQL parses and plans a hundred parameters less). A wave's lists
# go as one text parameter each, built by str.join or the json module in C: psycopg adapts a
# Python list element by element in Python (a regular expression per string), which was about
# a fifth of this thread's CPU per wave. SQLite takes the ORM path above; the tests run both.
# Statuses are literals. The claim reads the batch's pending rows through delivery_by_status
# in id order (it stops at the wave's size); the mark and the record find their rows by
# primary key only: naming the campaign there too lets the planner, which has no statistics on
# a campaign whose rows were just created, prefer scanning all of the campaign's rows.
_DELIVERY = Delivery._meta.db_table
_SUBSCRIPTION = PushSubscription._meta.db_table
_CAMPAIGN = Campaign._meta.db_table

_PG_CLAIM = f"""
WITH due AS (
    SELECT d.id FROM {_DELIVERY} d
    WHERE d.campaign_id = %(campaign)s
      AND d.status = '{DeliveryStatus.PENDING}'
      AND d.batch = %(batch)s
      AND (d.next_attempt_at IS NULL OR d.next_attempt_at <= %(now)s)
      -- Re-checked at every claim: a cancelled campaign stops here.
      AND EXISTS (
          SELECT 1 FROM {_CAMPAIGN} c
          WHERE c.id = %(campaign)s AND c.status = '{CampaignStatus.SENDING}'
      )
    ORDER BY d.id
    LIMIT %(size)s
    -- Two workers skip each other's rows.
    FOR UPDATE OF d SKIP LOCKED
), claimed AS (
    UPDATE {_DELIVERY} d
    SET status = '{DeliveryStatus.CLAIMED}', claim = %(claim)s, claimed_until = %(until)s
    FROM due
    WHERE d.id = due.id
    RETURNING d.id, d.attempts, d.subscription_id
)
SELECT claimed.id, claimed.attempts, claimed.subscription_id, s.endpoint, s.p256dh, s.auth
FROM claimed JOIN {_SUBSCRIPTION} s ON s.id = claimed.subscription_id
ORDER BY claimed.id
"""

# Marks a wave "sending" only while its campaign is: the campaign's row is locked (KEY SHARE:
# only campaign_cancel's FOR UPDATE waits for it, not the other workers' counters) until the
# statement commits.
_PG_MARK = f"""
WITH sending AS (
    SELECT 1 FROM {_CAMPAIGN}
    WHERE id = %(campaign)s AND status = '{CampaignStatus.SENDING}'
    FOR KEY SHARE
)
UPDATE {_DELIVERY} SET status = '{DeliveryStatus.SENDING}', claimed_until = %(until)s
WHERE id = ANY(%(ids)s::bigint[])
  AND claim = %(claim)s
  AND status = '{DeliveryStatus.CLAIMED}'
  AND EXISTS (SELECT 1 FROM sending)
RETURNING id
"""

# Every outcome of a wave in one statement: the rows (only those this worker's claims still
# hold), the subscriptions' health and the campaign's counters of what changed. The
# subscriptions' health follows every outcome, as on SQLite: delivered resets it; any other
# outcome that counts as an attempt, except expired, is one more failure.
_PG_RECORD = f"""
WITH outcome AS (
    SELECT * FROM json_to_recordset(%(outcomes)s::json) AS o(
        id bigint, subscription_id bigint, status text, code integer, error text,
        retry_at timestamptz, counted integer
    )
    -- Tells the planner how many there are (it assumes 100 rows from a function).
    LIMIT %(count)s
), updated AS (
    UPDATE {_DELIVERY} d
    SET status = o.status, last_status_code = o.code, error = o.error,
        next_attempt_at = o.retry_at, claimed_until = NULL, attempts = d.attempts + o.counted,
        sent_at = CASE WHEN o.status = '{DeliveryStatus.SENT}' THEN %(now)s END
    FROM outcome o
    WHERE d.id = o.id
      AND d.claim = ANY(%(claims)s::text[])
      AND d.status IN ('{DeliveryStatus.CLAIMED}', '{DeliveryStatus.SENDING}')
    RETURNING d.status
), ok AS (
    UPDATE {_SUBSCRIPTION} s SET last_success_at = %(now)s, consecutive_failures = 0
    FROM outcome o
    WHERE s.id = o.subscription_id AND o.status = '{DeliveryStatus.SENT}'
), failed AS (
    UPDATE {_SUBSCRIPTION} s SET consecutive_failures = s.consecutive_failures + 1
    FROM outcome o
    WHERE s.id = o.subscription_id
      AND o.status NOT IN ('{DeliveryStatus.SENT}', '{DeliveryStatus.EXPIRED}')
      AND o.counted = 1
), counted AS (
    SELECT status, count(*) AS n FROM updated GROUP BY status
), counters AS (
    UPDATE {_CAMPAIGN}
    SET {
    ", ".join(
        f"{counter} = {counter} + coalesce((SELECT n FROM counted WHERE status = '{status}'), 0)"
        for status, counter in _COUNTER_OF.items()
    )
}
    WHERE id = %(campaign)s
      AND EXISTS (SELECT 1 FROM counted WHERE status IN ({
    ", ".join(f"'{status}'" for status in _COUNTER_OF)
}))
)
SELECT status, n FROM counted
"""


def _pg_id_array(ids) -> str:
    """A list of ids as a PostgreSQL array literal (for a `%s::bigint[]` parameter)."""
    return "{" + ",".join(map(str, ids)) + "}"


def _deliveries_record_pg(*, campaign_id, outcomes, claims, now) -> None:
    """deliveries_record on PostgreSQL: one statement (its own transaction), and the expiry
    of the subscriptions a push service said are gone (in the same transaction) if any."""
    rows = []
    expired_subs = []
    for outcome in outcomes:
        retry_at = outcome.retry_at
        error = outcome.error
        rows.append(
            {
                "id": outcome.pk,
                "subscription_id": outcome.subscription_id,
                # A DeliveryStatus is a str: the json module writes its value as it is.
                "status": outcome.status,
                "code": outcome.code,
                "error": _error_text(error) if error else "",
                "retry_at": None if retry_at is None else retry_at.isoformat(),
                "counted": 1 if outcome.counts_as_attempt else 0,
            }
        )
        if outcome.status == DeliveryStatus.EXPIRED:
            expired_subs.append(outcome.subscription_id)
    params = {
        "campaign": campaign_id,
        "outcomes": json.dumps(rows),
        "count": len(rows),
        "now": now,
        "claims": list(claims),
    }
    with transaction.atomic() if expired_subs else contextlib.nullcontext():
        with connection.cursor() as cursor:
            cursor.execute(_PG_RECORD, params)
        if expired_subs:
            subscriptions_expire(subscription_ids=expired_subs, at=now)


def delivery_batches_to_resume(*, campaign_id: int, grace: float = 5.0) -> list[int]:
    """Batches of a sending campaign with rows due and no worker holding any of its rows."""
    now = timezone.now()
    rows = Delivery.objects.filter(campaign_id=campaign_id)
    held = set(
        rows.filter(
            status__in=[DeliveryStatus.CLAIMED, DeliveryStatus.SENDING], claimed_until__gte=now
        )
        .values_list("batch", flat=True)
        .distinct()
    )
    due = set(
        rows.filter(status=DeliveryStatus.PENDING)
        .filter(
            Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now - timedelta(seconds=grace))
        )
        .values_list("batch", flat=True)
        .distinct()
    )
    return sorted(due - held)


# --- A test before the campaign --------------------------------------------------------------


@dataclass(frozen=True)
class TestPushOutcome:
    customer: Customer
    delivered: bool
    status: int | None
    error: str


def campaign_send_test(*, actor, message: Message, customer_id: int) -> TestPushOutcome:
    """Send the message once to one customer's newest device that accepts notifications,
    through the push client the campaigns use, before sending the campaign (audited).

    Raises ValueError when the customer does not exist or has no such device. The click
    opens the message's link directly (a test is not a campaign: no click is counted).
    """
    import asyncio
    import uuid

    from notifications.payload import payload_bytes, payload_data
    from notifications.webpush import PushClient, PushMessage, vapid_get

    customer = Customer.objects.filter(pk=customer_id).first()
    subscription = (
        PushSubscription.objects.filter(customer_id=customer_id, status=SubscriptionStatus.ACTIVE)
        .order_by("-created_at", "-pk")
        .first()
    )
    if customer is None or subscription is None:
        raise ValueError(f"Client {customer_id} has no device that accepts notifications.")
    payload = payload_bytes(
        payload_data(
            title=message.title,
            body=message.body,
            url=message.link,
            icon=message.icon,
            image=message.image,
            tag=f"test-{uuid.uuid4().hex}",
        )
    )
    push = PushMessage(
        key=subscription.pk,
        endpoint=subscription.endpoint,
        p256dh=subscription.p256dh,
        auth=subscription.auth,
        payload=payload,
        ttl=message.ttl,
        urgency=message.urgency,
        topic="test",
    )

    async def send():
        client = PushClient(
            vapid=vapid_get(),
            concurrency=1,
            timeout=push_setting("PUSH_REQUEST_TIMEOUT"),
            ca_file=push_setting("PUSH_CA_FILE"),
        )
        await client.open()
        try:
            return await client.send(push)
        finally:
            await client.close()

    result = asyncio.run(send())
    delivered = result.status is not None and 200 <= result.status < 300
    outcome = f"{result.status} " if result.status else ""
    outcome += "delivered" if delivered else result.error or "not delivered"
    audit_record(
        customer=customer,
        actor=actor,
        action=AuditAction.PUSH_TEST,
        changes={"title": [None, message.title], "outcome": [None, outcome.strip()]},
    )
    return TestPushOutcome(
        customer=customer, delivered=delivered, status=result.status, error=result.error
    )
