"""Sending one batch of a campaign: claim, prepare, mark as sending, write, record, retry.

**The delivery guarantee: at most once per (campaign, subscription), and every row accounted
for.** A request that may have reached the push service is never sent again; a row ends
delivered (201), expired (404/410), failed (a definitive refusal, or retries exhausted with
nothing delivered) or unknown (a request that may have arrived, whose answer we did not get).

A campaign's delivery rows (one per subscription, created when it starts) are split into
batches; each batch is one task. A worker running a batch repeats:

1. Claim a wave of due pending rows ("claimed", with a lease; one statement, committed). The
   wave is no larger than half the pool's connections (`PUSH_CONCURRENCY`), so all of it is
   written at once. Two waves are claimed ahead of the one being written.
2. Prepare each request on the sender's event loop (encrypt the wave in the worker's
   encryption child process, notifications/encryption.py, or here when it is unavailable;
   validate the endpoint with endpoints.endpoint_problem, build with h11), while this thread
   marks and writes
   the wave before it, records answers and claims. A row that cannot be prepared fails on
   its own, with the reason; nothing one subscription holds can stop the batch.
3. Take a connection for each request of the wave (pooled, or opened now) once the oldest
   wave on the wire has given its connections back; a connection that cannot be opened is a
   refused attempt, and its row is never marked "sending".
4. Mark the wave's connected rows "sending" (one statement, committed; only if the campaign
   is still sending); right after that commit every request of the wave is handed to its
   socket, in one step of the event loop (a preparation running there gives way at the next
   message), and the batch waits for that before anything else.
5. Record the answers of the oldest wave on the wire once two are (one statement: rows,
   subscriptions' health, the campaign's counters).
   Each answer (notifications/http1.py says whether a request may have been written):
   201 → delivered; 404/410 → expired (the subscription too, and the customer's opt-in);
   429 → pending again after Retry-After (seconds or an HTTP date; a growing pause without
   one), the push-service origin paused for the campaign meanwhile, not counted as an
   attempt; 5xx, 408 and "not sent" errors (refused connection, DNS, TLS handshake, connect
   timeout) → pending again after an exponential backoff (`retry_delay`), failed after
   `PUSH_MAX_ATTEMPTS`; "may have been sent" errors (read timeout, connection dropped
   after the write, malformed answer) → unknown; other 4xx → failed. No retry is scheduled
   after the campaign's retry window (`PUSH_RETRY_WINDOW` from its start): what is still
   pending then fails.

A worker killed at any point leaves claimed rows (at most two waves; back to pending when the
lease passes: they were never written) and at most two waves of "sending" rows (unknown when
the lease passes): written ones, except a wave caught between the commit of its mark and its
write.
The sweep at the start of every batch and the campaign's watchdog task (notifications/tasks.py)
settle them and re-enqueue the batches nobody works on, so a campaign completes without anyone
running a command.

This module decides; every write to the rows goes through notifications/services.py, and
what to enqueue is returned to notifications/tasks.py (`BatchRun`).
"""

import asyncio
import concurrent.futures
import contextlib
import logging
import random
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.core.exceptions import ImproperlyConfigured
from django.db.models import F
from django.utils import timezone

from notifications import services
from notifications.conf import push_setting
from notifications.models import Campaign, CampaignStatus, Delivery, DeliveryStatus
from notifications.payload import campaign_payload
from notifications.services import DeliveryOutcome, DeliveryToSend
from notifications.webpush import (
    PushClient,
    PushMessage,
    PushResult,
    endpoint_origin,
    vapid_get,
)

logger = logging.getLogger(__name__)

EXPIRED_CODES = {404, 410}
# Answers that prove the push service did not take the message: it is safe to send again.
RETRY_CODES = {408, 425, 429}
RETRY_JITTER = (1.0, 1.25)
# Waves on the wire at once per worker: while one is answered and recorded, the next is
# written. Each wave is at most PUSH_CONCURRENCY / WAVES_IN_FLIGHT rows.
WAVES_IN_FLIGHT = 2
# Waves claimed and not yet marked sending per worker: the next one is prepared (encrypted,
# built, connected) by the sender's loop while the current one is marked and written and the
# answers before it are recorded. Claimed rows are never written until marked: a worker
# killed with them leaves them to go back to pending when their lease passes.
WAVES_AHEAD = 2


def retry_delay(attempts: int) -> float:
    """Seconds before retrying a delivery whose `attempts`-th attempt failed (no Retry-After).

    PUSH_RETRY_BASE_DELAY doubled per attempt, capped at PUSH_RETRY_MAX_DELAY, jittered.
    """
    nominal = min(
        push_setting("PUSH_RETRY_BASE_DELAY") * 2 ** (attempts - 1),
        push_setting("PUSH_RETRY_MAX_DELAY"),
    )
    return nominal * random.uniform(*RETRY_JITTER)


class _OriginPauses:
    """Push-service origins that answered 429, and until when this worker leaves them alone."""

    def __init__(self):
        self._until: dict[str, float] = {}
        self._streak: dict[str, int] = {}

    def slow_down(self, origin: str, retry_after: float | None) -> float:
        """Record a 429 from `origin`; returns the seconds to wait before the next request."""
        streak = self._streak.get(origin, 0)
        self._streak[origin] = streak + 1
        # No Retry-After: back off as for other refusals, growing while the 429s last.
        delay = retry_delay(streak + 1) if retry_after is None else retry_after
        delay = min(max(delay, 0.0), push_setting("PUSH_MAX_RETRY_AFTER"))
        self._until[origin] = max(self._until.get(origin, 0.0), time.time() + delay)
        return delay

    def clear(self) -> None:
        self._until.clear()
        self._streak.clear()

    def answered(self, endpoint: str) -> None:
        """An answer other than 429 from the push service of `endpoint` ends its 429 streak."""
        if self._streak:
            self._streak.pop(endpoint_origin(endpoint), None)

    def paused(self) -> bool:
        """Whether any origin may be paused (most of the time none is: no origin to compute)."""
        return bool(self._until)

    def paused_until(self, origin: str) -> float | None:
        until = self._until.get(origin)
        if until is None:
            return None
        if until <= time.time():
            del self._until[origin]
            return None
        return until


@dataclass(frozen=True, slots=True)
class BatchRun:
    """How a run of a batch ended, and what notifications/tasks.py should enqueue."""

    # "done" (every row of the batch has an outcome), "deferred" (run it again at
    # `run_again_at`), "stopped" (the campaign stopped sending) or "skipped" (not sending).
    outcome: str
    run_again_at: datetime | None = None
    # Other batches of the campaign that nobody works on (their worker died).
    orphan_batches: tuple[int, ...] = ()


def retry_window_end(campaign: Campaign) -> datetime:
    """After this, a campaign's deliveries are no longer retried (PUSH_RETRY_WINDOW)."""
    started = campaign.started_at or timezone.now()
    return started + timedelta(seconds=push_setting("PUSH_RETRY_WINDOW"))


PAUSED_PAST_WINDOW = (
    "not sent: its push service asked to slow down (429) until after the retry window "
    "(PUSH_RETRY_WINDOW) ended"
)


def _outcome(
    row: DeliveryToSend,
    result: PushResult,
    *,
    now: datetime,
    give_up_at: datetime,
    pauses: _OriginPauses,
) -> DeliveryOutcome:
    code = result.status
    if code is not None and 200 <= code < 300:
        pauses.answered(row.endpoint)
        return DeliveryOutcome(row.pk, row.subscription_id, DeliveryStatus.SENT, code)
    base = {"pk": row.pk, "subscription_id": row.subscription_id, "code": code}
    origin = endpoint_origin(row.endpoint)
    error = result.error
    if code in EXPIRED_CODES:
        return DeliveryOutcome(status=DeliveryStatus.EXPIRED, error=error, **base)
    if result.maybe_sent:
        return DeliveryOutcome(status=DeliveryStatus.UNKNOWN, error=error, **base)
    if code == 429:
        # The service asks us to slow down: never a failed attempt; only the window ends it.
        delay = pauses.slow_down(origin, result.retry_after)
        if now >= give_up_at:
            error = f"{error} (retries stopped: PUSH_RETRY_WINDOW ended)"
            return DeliveryOutcome(status=DeliveryStatus.FAILED, error=error, **base)
        when = min(now + timedelta(seconds=round(delay, 3)), give_up_at)
        return DeliveryOutcome(
            status=DeliveryStatus.PENDING,
            error=error,
            retry_at=when,
            counts_as_attempt=False,
            **base,
        )
    retryable = result.retryable and (code is None or code in RETRY_CODES or code >= 500)
    attempts = row.attempts + 1
    if retryable and attempts < push_setting("PUSH_MAX_ATTEMPTS") and now < give_up_at:
        delay = retry_delay(attempts)
        if result.retry_after is not None:
            delay = min(result.retry_after, push_setting("PUSH_MAX_RETRY_AFTER"))
        when = min(now + timedelta(seconds=round(delay, 3)), give_up_at)
        return DeliveryOutcome(status=DeliveryStatus.PENDING, error=error, retry_at=when, **base)
    return DeliveryOutcome(status=DeliveryStatus.FAILED, error=error, **base)


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
        # Waves being marked sending, and those the loop has started writing: while they
        # differ, a preparation running on the loop pauses (_prepare_and_connect). Each
        # counter is written by one thread only.
        self.writes_submitted = 0
        self.writes_started = 0
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


def _sender() -> tuple[_EventLoopThread, PushClient, _OriginPauses]:
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
        push_setting("PUSH_ENCRYPT_IN_CHILD"),
    )
    with _sender_lock:
        current = _sender_state.get("current")
        if current is not None and current[0] == config and current[1].thread.is_alive():
            return current[1], current[2], current[3]
        if current is not None:
            with contextlib.suppress(Exception):
                current[1].run(current[2].close())
            current[1].__exit__(None, None, None)
            del _sender_state["current"]
        loop = _EventLoopThread().__enter__()
        client = PushClient(
            vapid=vapid,
            concurrency=config[1],
            timeout=config[2],
            ca_file=config[3],
            encrypt_in_child=config[4],
        )
        try:
            loop.run(client.open())
        except OSError as exc:
            # A CA file that cannot be used: stop before claiming anything, rather than
            # fail every delivery of the batch with a certificate error.
            loop.__exit__(None, None, None)
            raise ImproperlyConfigured(f"PUSH_CA_FILE {config[3]}: {exc}") from exc
        pauses = _OriginPauses()
        _sender_state["current"] = (config, loop, client, pauses)
        return loop, client, pauses


def sender_encryption():
    """This process's encryption child (an EncryptionProcess; None when it encrypts itself).

    The benchmark reads the child's CPU time from it.
    """
    return _sender()[1].encryption


def batch_send(*, campaign_id: int, batch: int, can_defer: bool = False) -> BatchRun:
    """Send one batch of a campaign until every row has an outcome; safe to run twice.

    `can_defer`: the task backend can run the batch later, so a long retry wait ends this
    run with outcome "deferred" and `run_again_at` instead of a sleep.
    """
    campaign = Campaign.objects.filter(pk=campaign_id).first()
    if campaign is None or campaign.status != CampaignStatus.SENDING:
        return BatchRun("skipped")
    give_up_at = retry_window_end(campaign)
    # Whatever a dead worker left, in any batch of the campaign, is settled before sending.
    services.deliveries_sweep(campaign_id=campaign_id, give_up_at=give_up_at)
    orphans = tuple(
        b for b in services.delivery_batches_to_resume(campaign_id=campaign_id) if b != batch
    )
    base_payload = campaign_payload(campaign)
    topic = f"campaign-{campaign.pk}"
    loop, client, pauses = _sender()
    # Two waves are on the wire at once (one is recorded while the next is written), so each
    # is at most half the connections: every request of a wave has a connection the moment
    # the wave is marked sending.
    concurrency = push_setting("PUSH_CONCURRENCY")
    wave_size = max(1, min(push_setting("PUSH_WAVE_SIZE"), concurrency // WAVES_IN_FLIGHT))
    waves_in_flight = WAVES_IN_FLIGHT if concurrency >= WAVES_IN_FLIGHT else 1
    lease = push_setting("PUSH_CLAIM_LEASE")

    def prepare(claim: str, rows: list[DeliveryToSend]):
        """Start preparing a claimed wave on the sender's loop: (the future of its connected
        requests and of its rows that cannot be sent, outcomes of rows held back now)."""
        refused, held, messages = [], {}, []
        for row in rows:
            paused = pauses.paused() and pauses.paused_until(endpoint_origin(row.endpoint))
            if paused:
                held.setdefault(paused, []).append(row)
                continue
            messages.append(
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
            )
        # Encrypting, building and connecting run on the sender's event loop thread, while
        # this thread marks, records and claims the waves around it (waiting on PostgreSQL
        # without holding the GIL).
        future = loop.submit(_prepare_and_connect(loop, client, messages)) if messages else None
        for until, held_rows in held.items():
            # Held back by a 429 pause of their push service: not an attempt, not written.
            when = datetime.fromtimestamp(until, tz=UTC)
            if when < give_up_at:
                ids = [row.pk for row in held_rows]
                services.deliveries_release(claim=claim, ids=ids, retry_at=when)
                continue
            # The pause outlasts the retry window: never sent, they fail now. Released
            # instead, due at the window's end (already past), they would be claimed and
            # held again at once, round after round, until the pause ended.
            refused.extend(
                DeliveryOutcome(
                    pk=row.pk,
                    subscription_id=row.subscription_id,
                    status=DeliveryStatus.FAILED,
                    error=PAUSED_PAST_WINDOW,
                    counts_as_attempt=False,
                )
                for row in held_rows
            )
        return future, refused

    in_flight: deque = deque()  # (claim, rows by pk, future of the answers), oldest first
    # Claimed waves not marked sending yet, oldest first: (claim, rows by pk, future of their
    # preparation). The one after the wave being marked is prepared meanwhile.
    ahead: deque = deque()
    unrecorded: list[DeliveryOutcome] = []
    unrecorded_claims: set[str] = set()
    outcome = BatchRun("done", orphan_batches=orphans)
    stopped = False

    def claim_next() -> bool:
        """Claim the next wave and start preparing it; False when nothing was due."""
        claim = uuid.uuid4().hex
        rows = services.deliveries_claim(
            campaign_id=campaign_id, batch=batch, size=wave_size, lease=lease, claim=claim
        )
        if rows:
            future, refused = prepare(claim, rows)
            ahead.append((claim, {row.pk: row for row in rows}, future))
            if refused:
                unrecorded.extend(refused)
                unrecorded_claims.add(claim)
        return bool(rows)

    try:
        while True:
            # The wave after the one about to be marked is prepared by the sender's loop
            # while this thread marks and writes it, records answers and claims.
            while len(ahead) < WAVES_AHEAD and not stopped and claim_next():
                pass
            wave = ahead[0] if ahead else None
            if wave is not None:
                claim, by_pk, future = wave
                connected, unusable = future.result() if future is not None else ([], [])
                now = timezone.now()
                refused = [
                    DeliveryOutcome(
                        pk=result.key,
                        subscription_id=by_pk[result.key].subscription_id,
                        status=DeliveryStatus.FAILED,
                        error=result.error,
                    )
                    for result in unusable
                ]
                # A connection that could not be opened: nothing was written, so a retry
                # like any refused attempt (the row was never "sending").
                refused += [
                    _outcome(by_pk[item.key], item, now=now, give_up_at=give_up_at, pauses=pauses)
                    for item in connected
                    if isinstance(item, PushResult)
                ]
                connected = [item for item in connected if not isinstance(item, PushResult)]
                if refused:
                    unrecorded += refused
                    unrecorded_claims.add(claim)
                # Marked only once every request of the wave is built and has its connection,
                # so nothing is left between that commit and the write but handing the bytes
                # to the sockets. The next wave's preparation on the loop pauses from before
                # the mark until the write (see _prepare_and_connect): the loop and the GIL
                # are free the moment the commit returns, as when nothing else was prepared.
                sendable, go = set(), []
                if connected:
                    loop.writes_submitted += 1
                    handed = False
                    try:
                        sendable = services.deliveries_mark_sending(
                            campaign_id=campaign_id,
                            claim=claim,
                            ids=[item.key for item in connected],
                            lease=lease,
                        )
                        ahead.popleft()
                        go = [item for item in connected if item.key in sendable]
                        if go:
                            # Nothing else happens until the wave is on the wire: from the
                            # commit that marked it sending to its write is only the event
                            # loop's turn.
                            written = concurrent.futures.Future()
                            sending = loop.submit(_write(loop, client, go, written))
                            handed = True
                            concurrent.futures.wait(
                                [written, sending], return_when=concurrent.futures.FIRST_COMPLETED
                            )
                            in_flight.append((claim, by_pk, sending))
                    finally:
                        if not handed:
                            loop.submit(_write(loop, client, [], None))
                else:
                    ahead.popleft()
                if len(go) < len(connected):
                    # The campaign stopped sending (cancelled), or a claim was lost.
                    held_back = [item for item in connected if item.key not in sendable]
                    loop.run(_abandon(client, held_back))
                    services.deliveries_release(claim=claim, ids=[item.key for item in held_back])
                    stopped = stopped or not _still_sending(campaign_id)
            # The oldest wave is waited for when no more may be written, or when nothing new
            # goes out (the batch is draining).
            if in_flight and (len(in_flight) >= waves_in_flight or wave is None):
                done_claim, done_rows, future = in_flight.popleft()
                results = future.result()
                now = timezone.now()
                unrecorded += [
                    _outcome(
                        done_rows[result.key],
                        result,
                        now=now,
                        give_up_at=give_up_at,
                        pauses=pauses,
                    )
                    for result in results
                ]
                unrecorded_claims.add(done_claim)
            if unrecorded:
                services.deliveries_record(
                    campaign_id=campaign_id,
                    outcomes=unrecorded,
                    claims=tuple(unrecorded_claims),
                )
                unrecorded, unrecorded_claims = [], set()
            if wave is not None or in_flight:
                continue
            if stopped or not _still_sending(campaign_id):
                outcome = BatchRun("stopped")
                break
            wait = _next_wait(campaign_id=campaign_id, batch=batch)
            if wait is None:
                break
            if wait > push_setting("PUSH_MAX_INLINE_WAIT") and can_defer:
                when = timezone.now() + timedelta(seconds=wait)
                outcome = BatchRun("deferred", run_again_at=when, orphan_batches=orphans)
                break
            time.sleep(min(wait, 1.0) if wait else 0.05)
    finally:
        for claim, by_pk, future in ahead:
            # Stopping on an error before these waves were marked sending: never written.
            with contextlib.suppress(Exception):
                if future is not None:
                    connected, _ = future.result()
                    loop.run(_abandon(client, connected))
            with contextlib.suppress(Exception):
                services.deliveries_release(claim=claim, ids=list(by_pk))
        for _, _, future in in_flight:
            # Stopping on an error: let the requests on the wire finish rather than cut them
            # at a random point; their rows stay "sending" and their outcome becomes unknown.
            with contextlib.suppress(BaseException):
                future.result()
    services.campaign_finish_if_done(campaign_id=campaign_id)
    return outcome


async def _abandon(client: PushClient, connected: list) -> None:
    client.abandon(connected)


# A wave's preparation lets the loop read answers (and write a wave just marked sending)
# every this many messages, rather than hold it for the whole wave.
PREPARE_TURN = 8
# How often a preparation paused for a wave being marked looks again (the write itself wakes
# the loop at once).
WRITE_WAIT = 0.0005


async def _prepare_and_connect(sender: "_EventLoopThread", client: PushClient, messages: list):
    """Prepare each message's request and take a connection for it: (`Connected` items, or
    `PushResult` for a connection that could not be opened; results of messages that cannot
    be sent)."""
    ready, refused = [], []
    # Encrypted by the worker's child process, on the other core, while this loop writes and
    # reads the waves around this one (None without a child: `prepare` encrypts).
    bodies = await client.encrypt_many(messages)
    for index, message in enumerate(messages):
        # A wave being marked sending is written before anything else the loop does; until
        # then the loop waits (in its selector, the GIL free) rather than prepare.
        while sender.writes_started != sender.writes_submitted:
            await asyncio.sleep(WRITE_WAIT)
        if index and not index % PREPARE_TURN:
            await asyncio.sleep(0)
        prepared = client.prepare(message, body=None if bodies is None else bodies[index])
        if isinstance(prepared, PushResult):
            refused.append(prepared)
        else:
            ready.append((message.key, prepared))
    return await client.connect_prepared(ready), refused


async def _write(sender: "_EventLoopThread", client: PushClient, go: list, written):
    """Write a wave just marked sending (nothing when `go` is empty: the mark refused it)
    and let the preparation of the next one go on."""
    sender.writes_started += 1
    if not go:
        return []
    return await client.send_connected(go, written=written)


def _still_sending(campaign_id: int) -> bool:
    return Campaign.objects.filter(pk=campaign_id, status=CampaignStatus.SENDING).exists()
