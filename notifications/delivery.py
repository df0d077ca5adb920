"""Sending one batch of a campaign: claim, send concurrently, record, retry.

A campaign's delivery rows (one per subscription, created when it starts) are split into
batches; each batch is one task. A worker running a batch repeats:

1. Claim a wave of due pending rows: mark them "sending" with its claim id and a lease
   (`PUSH_CLAIM_LEASE`) and commit, before any request leaves.
2. Send the wave concurrently through the pooled client (notifications/webpush.py).
3. Record each answer in one transaction with the campaign's counters:
   201 → sent; 404/410 → expired (the subscription too, and the customer's opt-in);
   429 → pending again after Retry-After; 5xx and network errors → pending again after an
   exponential backoff capped at `PUSH_RETRY_MAX_DELAY` (`retry_delay`), failed after
   `PUSH_MAX_ATTEMPTS` (the defaults ride out an outage of about five minutes); other
   4xx → failed.

Exactly-once is impossible over HTTP when a worker can die between sending a request and
recording its answer; the issue asks that no subscription receives a campaign twice, so
delivery is **at most once**: a row recorded as sent, or claimed by a worker, is never sent
again. A worker that is killed leaves at most one wave (`PUSH_WAVE_SIZE` rows) "sending";
when its lease has passed, the next run of the batch (`manage.py push_resume`, which
`make run` calls before starting the worker) marks those rows "unknown" (they may or may not
have arrived) and sends the rest. A row is only re-sent after an answer that says it was not
delivered (429, 5xx, network error before an answer).
"""

import asyncio
import concurrent.futures
import contextlib
import logging
import random
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta

from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from notifications.conf import push_setting
from notifications.models import Campaign, CampaignStatus, Delivery, DeliveryStatus
from notifications.payload import campaign_payload
from notifications.webpush import PushClient, PushMessage, PushResult, vapid_get

logger = logging.getLogger(__name__)

EXPIRED_CODES = {404, 410}
RETRY_CODES = {408, 425, 429}


def _is_retryable(result: PushResult) -> bool:
    if not result.retryable:
        return False
    return result.status is None or result.status in RETRY_CODES or result.status >= 500


RETRY_JITTER = (1.0, 1.25)


def retry_delay(attempts: int) -> float:
    """Seconds before retrying a delivery whose `attempts`-th attempt failed (no Retry-After).

    PUSH_RETRY_BASE_DELAY doubled per attempt, capped at PUSH_RETRY_MAX_DELAY, jittered.
    """
    nominal = min(
        push_setting("PUSH_RETRY_BASE_DELAY") * 2 ** (attempts - 1),
        push_setting("PUSH_RETRY_MAX_DELAY"),
    )
    return nominal * random.uniform(*RETRY_JITTER)


def deliveries_expire_stale(*, campaign_id: int, batch: int | None = None) -> int:
    """Give the outcome "unknown" to rows a dead worker left "sending" past their lease."""
    with transaction.atomic():
        stale = Delivery.objects.filter(
            campaign_id=campaign_id,
            status=DeliveryStatus.SENDING,
            claimed_until__lt=timezone.now(),
        )
        if batch is not None:
            stale = stale.filter(batch=batch)
        count = stale.update(
            status=DeliveryStatus.UNKNOWN,
            error="The worker stopped while sending; not sent again to avoid a duplicate.",
        )
        if count:
            Campaign.objects.filter(pk=campaign_id).update(unknown=F("unknown") + count)
    return count


@dataclass(slots=True)
class _Row:
    """A claimed delivery with what sending it needs."""

    pk: int
    attempts: int
    subscription_id: int
    endpoint: str
    p256dh: str
    auth: str


def _claim(*, campaign_id: int, batch: int, size: int) -> tuple[str, list[_Row]]:
    """Claim up to `size` due pending rows of the batch for this worker (committed)."""
    claim = uuid.uuid4().hex
    now = timezone.now()
    with transaction.atomic():
        due = (
            Delivery.objects.filter(campaign_id=campaign_id, batch=batch, status="pending")
            .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
            .order_by("pk")
            # On PostgreSQL two workers skip each other's rows; the status condition of the
            # update below makes the claim exclusive on every database.
            .select_for_update(skip_locked=True)
        )
        ids = list(due.values_list("pk", flat=True)[:size])
        if ids:
            Delivery.objects.filter(pk__in=ids, status=DeliveryStatus.PENDING).update(
                status=DeliveryStatus.SENDING,
                claim=claim,
                claimed_until=now + timedelta(seconds=push_setting("PUSH_CLAIM_LEASE")),
                attempts=F("attempts") + 1,
            )
    if not ids:
        return claim, []
    rows = [
        _Row(*values)
        for values in Delivery.objects.filter(
            pk__in=ids, claim=claim, status=DeliveryStatus.SENDING
        )
        .order_by("pk")
        .values_list(
            "pk",
            "attempts",
            "subscription_id",
            "subscription__endpoint",
            "subscription__p256dh",
            "subscription__auth",
        )
    ]
    return claim, rows


def _record(*, campaign_id: int, claim: str, rows: list[_Row], results: list[PushResult]):
    """Store a wave's answers, the subscriptions' health and the campaign's counters."""
    from notifications.services import subscriptions_expire, subscriptions_record_results

    now = timezone.now()
    by_key = {row.pk: row for row in rows}
    groups: dict[tuple, list[int]] = defaultdict(list)
    ok_subs, failed_subs, expired_subs = [], [], []
    max_attempts = push_setting("PUSH_MAX_ATTEMPTS")
    for result in results:
        row = by_key[result.key]
        code = result.status
        if code is not None and 200 <= code < 300:
            groups[(DeliveryStatus.SENT, code, "", None)].append(row.pk)
            ok_subs.append(row.subscription_id)
        elif code in EXPIRED_CODES:
            groups[(DeliveryStatus.EXPIRED, code, result.error, None)].append(row.pk)
            expired_subs.append(row.subscription_id)
        elif _is_retryable(result) and row.attempts < max_attempts:
            delay = retry_delay(row.attempts)
            if result.retry_after is not None:
                delay = min(result.retry_after, push_setting("PUSH_MAX_RETRY_AFTER"))
            when = now + timedelta(seconds=round(delay, 1))
            groups[(DeliveryStatus.PENDING, code, result.error, when)].append(row.pk)
            failed_subs.append(row.subscription_id)
        else:
            groups[(DeliveryStatus.FAILED, code, result.error, None)].append(row.pk)
            failed_subs.append(row.subscription_id)
    counts = defaultdict(int)
    with transaction.atomic():
        for (status, code, error, when), ids in groups.items():
            updated = Delivery.objects.filter(
                pk__in=ids, claim=claim, status=DeliveryStatus.SENDING
            ).update(
                status=status,
                last_status_code=code,
                error=error,
                next_attempt_at=when,
                claimed_until=None,
                sent_at=now if status == DeliveryStatus.SENT else None,
            )
            counts[status] += updated
        subscriptions_record_results(ok=ok_subs, failed=failed_subs, at=now)
        if expired_subs:
            subscriptions_expire(subscription_ids=expired_subs, at=now)
        changes = {
            name: F(name) + counts[status]
            for name, status in (
                ("delivered", DeliveryStatus.SENT),
                ("failed", DeliveryStatus.FAILED),
                ("expired", DeliveryStatus.EXPIRED),
            )
            if counts[status]
        }
        if changes:
            Campaign.objects.filter(pk=campaign_id).update(**changes)


def _next_wait(*, campaign_id: int, batch: int) -> float | None:
    """Seconds until the batch's next retry is due; None when nothing is left to send."""
    pending = Delivery.objects.filter(
        campaign_id=campaign_id, batch=batch, status=DeliveryStatus.PENDING
    )
    nxt = pending.order_by(F("next_attempt_at").asc(nulls_first=True)).first()
    if nxt is None:
        return None
    if nxt.next_attempt_at is None:
        return 0.0
    return max(0.0, (nxt.next_attempt_at - timezone.now()).total_seconds())


class _EventLoopThread:
    """An event loop in its own thread for the HTTP side of a batch.

    The database work stays in the calling thread (the ORM is synchronous), and the batch
    works whether or not the caller's thread already runs an event loop.
    """

    def __enter__(self) -> "_EventLoopThread":
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="push-sender", daemon=True
        )
        self.thread.start()
        return self

    def submit(self, coroutine) -> concurrent.futures.Future:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def run(self, coroutine):
        return self.submit(coroutine).result()

    def __exit__(self, *exc) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


_sender_state: dict = {}
_sender_lock = threading.Lock()


def _sender() -> tuple[_EventLoopThread, PushClient]:
    """The worker process's event loop and push client, kept from batch to batch.

    Keeping them keeps the pool's connections (and their TLS sessions) to the push services
    open across batches and campaigns, instead of a hundred new handshakes per batch.
    """
    vapid = vapid_get()
    config = (
        vapid,
        push_setting("PUSH_CONCURRENCY"),
        push_setting("PUSH_REQUEST_TIMEOUT"),
        push_setting("PUSH_CA_FILE"),
    )
    with _sender_lock:
        current = _sender_state.get("current")
        if current is not None and current[0] == config and current[1].thread.is_alive():
            return current[1], current[2]
        if current is not None:
            with contextlib.suppress(Exception):
                current[1].run(current[2].close())
            current[1].__exit__(None, None, None)
            del _sender_state["current"]
        loop = _EventLoopThread().__enter__()
        client = PushClient(
            vapid=vapid, concurrency=config[1], timeout=config[2], ca_file=config[3]
        )
        try:
            loop.run(client.open())
        except OSError as exc:
            # A CA file that cannot be used: stop before claiming anything, rather than
            # fail every delivery of the batch with a certificate error.
            loop.__exit__(None, None, None)
            raise ImproperlyConfigured(f"PUSH_CA_FILE {config[3]}: {exc}") from exc
        _sender_state["current"] = (config, loop, client)
        return loop, client


def batch_send(*, campaign_id: int, batch: int) -> str:
    """Send one batch of a campaign until every row has an outcome; safe to run twice.

    Returns "done", "deferred" (a long retry wait was handed back to the queue) or
    "skipped" (the campaign is not sending).
    """
    from notifications.services import campaign_finish_if_done
    from notifications.tasks import send_batch

    campaign = Campaign.objects.filter(pk=campaign_id).first()
    if campaign is None or campaign.status != CampaignStatus.SENDING:
        return "skipped"
    base_payload = campaign_payload(campaign)
    topic = f"campaign-{campaign.pk}"
    outcome = "done"
    loop, client = _sender()
    wave_size = push_setting("PUSH_WAVE_SIZE")

    def messages(rows: list[_Row]) -> list[PushMessage]:
        return [
            PushMessage(
                key=row.pk,
                endpoint=row.endpoint,
                p256dh=row.p256dh,
                auth=row.auth,
                payload=base_payload.for_subscription(row.subscription_id),
                ttl=campaign.ttl,
                urgency=campaign.urgency,
                topic=topic,
            )
            for row in rows
        ]

    # Two waves overlap: while one is on the wire, the worker records the previous one
    # and claims the next, so the database round trips cost no sending time.
    in_flight = None  # (claim, rows, future of the results)
    try:
        deliveries_expire_stale(campaign_id=campaign_id, batch=batch)
        while True:
            claim, rows = _claim(campaign_id=campaign_id, batch=batch, size=wave_size)
            finished = None
            if in_flight is not None:
                finished = (*in_flight[:2], in_flight[2].result())
                in_flight = None
            if rows:
                in_flight = (claim, rows, loop.submit(client.send_many(messages(rows))))
            if finished is not None:
                _record(
                    campaign_id=campaign_id,
                    claim=finished[0],
                    rows=finished[1],
                    results=finished[2],
                )
            if in_flight is not None or finished is not None:
                continue
            wait = _next_wait(campaign_id=campaign_id, batch=batch)
            if wait is None:
                break
            can_defer = send_batch.get_backend().supports_defer
            if wait > push_setting("PUSH_MAX_INLINE_WAIT") and can_defer:
                run_after = timezone.now() + timedelta(seconds=wait)
                send_batch.using(run_after=run_after).enqueue(campaign_id, batch)
                outcome = "deferred"
                break
            time.sleep(min(wait, 1.0) if wait else 0.05)
    finally:
        if in_flight is not None:
            # Stopping on an error: let the requests on the wire finish rather than cut
            # them at a random point; their rows stay "sending" (outcome unknown).
            with contextlib.suppress(BaseException):
                in_flight[2].result()
    campaign_finish_if_done(campaign_id=campaign_id)
    return outcome
