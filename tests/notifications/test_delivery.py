"""Delivery against a real local push service (tests/push_service.py): no mocks of the HTTP
client or of the cryptography; the service verifies the VAPID JWT and decrypts each message."""

import io
import json
import socket
import uuid
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from clients.models import AuditEntry, Customer
from notifications import delivery, services
from notifications.models import (
    Campaign,
    CampaignStatus,
    Delivery,
    DeliveryStatus,
    PushSubscription,
    SubscriptionStatus,
)
from tests.notifications.fixtures_push import (  # noqa: F401
    new_campaign,
    send_campaign,
    subscribe,
    vapid_settings,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("vapid_settings")]


@pytest.fixture
def run(django_capture_on_commit_callbacks):
    return lambda **kwargs: send_campaign(django_capture_on_commit_callbacks, **kwargs)


def _deliveries(campaign):
    return {d.subscription_id: d for d in Delivery.objects.filter(campaign=campaign)}


def test_every_subscription_gets_the_campaign_once_with_the_protocol_headers(
    push_service, run, settings
):
    settings.PUSH_CONCURRENCY = 3
    subscriptions = [subscribe(push_service) for _ in range(12)]
    campaign = run(ttl=3600, urgency="high", title="Spring sale")
    assert campaign.status == CampaignStatus.SENT
    assert (campaign.recipients, campaign.delivered, campaign.failed) == (12, 12, 0)
    assert campaign.customers_count == 12
    assert campaign.finished_at is not None
    tokens = set()
    for subscription in subscriptions:
        [message] = push_service.messages_for(subscription.endpoint)
        data = message.json()
        assert set(data) == {"title", "body", "url", "icon", "image", "tag"}
        assert data["title"] == "Spring sale"
        assert data["tag"] == f"campaign-{campaign.pk}"
        assert data["url"].startswith("https://backoffice.example/push/c/")
        assert (message.ttl, message.urgency, message.topic) == (
            3600,
            "high",
            f"campaign-{campaign.pk}",
        )
        assert message.claims["aud"] == push_service.origin
        tokens.add(message.headers["Authorization"])
        subscription.refresh_from_db()
        assert subscription.last_success_at is not None
    # One VAPID JWT for the push service's origin, reused for every message.
    assert len(tokens) == 1
    assert all(
        d.status == DeliveryStatus.SENT and d.attempts == 1 for d in _deliveries(campaign).values()
    )
    # Connections are pooled: at most PUSH_CONCURRENCY of them, reused for all 12 messages.
    assert push_service.connections_count <= 3


def test_gone_subscriptions_expire_and_customers_lose_their_opt_in(push_service, run):
    gone = subscribe(push_service)
    missing = subscribe(push_service)
    kept = subscribe(push_service)
    second_device = subscribe(push_service, customer=kept.customer)
    push_service.respond(gone.endpoint, status=410)
    push_service.respond(missing.endpoint, status=404)
    push_service.respond(second_device.endpoint, status=410)
    campaign = run()
    assert (campaign.delivered, campaign.expired, campaign.failed) == (1, 3, 0)
    for subscription in (gone, missing, second_device):
        subscription.refresh_from_db()
        assert subscription.status == SubscriptionStatus.EXPIRED
        assert _deliveries(campaign)[subscription.pk].status == DeliveryStatus.EXPIRED
    gone.customer.refresh_from_db()
    kept.customer.refresh_from_db()
    assert gone.customer.push_opt_in is False
    assert kept.customer.push_opt_in is True  # one device still accepts
    assert AuditEntry.objects.filter(
        customer=gone.customer, action="push_opt_in", changes={"push_opt_in": [True, False]}
    ).exists()
    # Expired subscriptions are not sent the next campaign.
    push_service.clear()
    second = run()
    assert second.recipients == 1
    assert len(push_service.received) == 1


def test_429_is_retried_after_retry_after(push_service, run):
    subscription = subscribe(push_service)
    push_service.respond(subscription.endpoint, status=429, times=1, retry_after=1)
    campaign = run()
    row = _deliveries(campaign)[subscription.pk]
    # A 429 asks us to slow down: it is not an attempt that counts towards failing.
    assert (row.status, row.attempts, row.last_status_code) == (DeliveryStatus.SENT, 1, 201)
    [message] = push_service.messages_for(subscription.endpoint)
    assert campaign.delivered == 1
    # The retry waited for Retry-After (1 s) after the refused request.
    assert (message.received_at - campaign.started_at).total_seconds() >= 1


def test_server_errors_are_retried_with_backoff_then_fail(push_service, run, settings):
    settings.PUSH_MAX_ATTEMPTS = 3
    flaky = subscribe(push_service)
    broken = subscribe(push_service)
    push_service.respond(flaky.endpoint, status=503, times=2)
    push_service.respond(broken.endpoint, status=500)
    campaign = run()
    rows = _deliveries(campaign)
    assert (rows[flaky.pk].status, rows[flaky.pk].attempts) == (DeliveryStatus.SENT, 3)
    assert (rows[broken.pk].status, rows[broken.pk].attempts) == (DeliveryStatus.FAILED, 3)
    assert rows[broken.pk].last_status_code == 500
    assert (campaign.delivered, campaign.failed, campaign.status) == (1, 1, CampaignStatus.SENT)
    broken.refresh_from_db()
    assert broken.status == SubscriptionStatus.ACTIVE  # a failing server is not an expiry
    assert broken.consecutive_failures == 3
    assert len(push_service.messages_for(flaky.endpoint)) == 1


def test_an_unreachable_push_service_fails_after_the_retries(push_service, run, settings):
    settings.PUSH_MAX_ATTEMPTS = 2
    subscription = subscribe(push_service)
    push_service.set_down(True)
    campaign = run()
    row = _deliveries(campaign)[subscription.pk]
    assert (row.status, row.attempts, row.last_status_code) == (DeliveryStatus.FAILED, 2, None)
    assert row.error
    assert campaign.failed == 1 and campaign.status == CampaignStatus.SENT


def test_a_timeout_after_the_request_was_written_is_unknown_and_never_resent(
    push_service, run, settings
):
    settings.PUSH_REQUEST_TIMEOUT = 0.5
    slow = subscribe(push_service)
    fast = subscribe(push_service)
    push_service.respond(slow.endpoint, status=201, delay=2.0)
    campaign = run()
    rows = _deliveries(campaign)
    assert (rows[slow.pk].status, rows[slow.pk].attempts) == (DeliveryStatus.UNKNOWN, 1)
    assert "Timed out" in rows[slow.pk].error
    assert rows[fast.pk].status == DeliveryStatus.SENT
    assert (campaign.delivered, campaign.unknown, campaign.failed) == (1, 1, 0)


def test_other_client_errors_fail_without_retry(push_service, run):
    subscription = subscribe(push_service)
    push_service.respond(subscription.endpoint, status=400)
    campaign = run()
    row = _deliveries(campaign)[subscription.pk]
    assert (row.status, row.attempts, row.last_status_code) == (DeliveryStatus.FAILED, 1, 400)


class WorkerKilled(BaseException):
    """Stands for the worker process dying: nothing after it runs."""


def _kill_on_record(monkeypatch, call: int):
    """Kill the worker at its `call`-th recording transaction: the wave it records was
    answered by the push service but not recorded, the wave after it written, and the one
    after that claimed but not marked sending (so never written)."""
    calls = []
    real_record = services.deliveries_record

    def record(**kwargs):
        calls.append(1)
        if len(calls) == call:
            raise WorkerKilled
        return real_record(**kwargs)

    monkeypatch.setattr(services, "deliveries_record", record)


def _leases_run_out(campaign):
    """Time passes beyond the dead worker's claims."""
    Delivery.objects.filter(
        campaign=campaign, status__in=[DeliveryStatus.CLAIMED, DeliveryStatus.SENDING]
    ).update(claimed_until=timezone.now() - timedelta(seconds=1))


def _resume():
    call_command("push_resume", stdout=io.StringIO())


def test_a_worker_killed_after_sending_resumes_without_sending_twice(
    push_service, run, settings, monkeypatch
):
    """Killed after the push service accepted a wave but before the answers were recorded."""
    settings.PUSH_WAVE_SIZE = 4
    subscriptions = [subscribe(push_service) for _ in range(14)]
    _kill_on_record(monkeypatch, 2)
    campaign = run()
    assert campaign.status == CampaignStatus.SENDING
    statuses = [d.status for d in _deliveries(campaign).values()]
    assert statuses.count(DeliveryStatus.SENT) == 4
    # Two waves were on the wire (one answered and not recorded, the next written meanwhile):
    # both arrived, the worker never knew.
    assert statuses.count(DeliveryStatus.SENDING) == 8
    # The wave claimed after them was never written: it is neither lost nor "unknown".
    assert statuses.count(DeliveryStatus.PENDING) == 2
    assert len(push_service.received) == 12

    monkeypatch.undo()
    # A restarted worker leaves the dead one's rows alone until their lease runs out...
    _resume()
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.SENDING
    # ...and once it has, the never-written rows are sent and the campaign completes.
    _leases_run_out(campaign)
    _resume()
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.SENT
    assert (campaign.delivered, campaign.unknown, campaign.failed) == (6, 8, 0)
    # Every subscription received the campaign exactly once; only the waves that were on the
    # wire when the worker died are unknown.
    for subscription in subscriptions:
        assert len(push_service.messages_for(subscription.endpoint)) == 1
    assert len(push_service.received) == 14
    unknown = Delivery.objects.filter(campaign=campaign, status=DeliveryStatus.UNKNOWN)
    assert all(len(push_service.messages_for(d.subscription.endpoint)) == 1 for d in unknown)


def test_claimed_rows_of_a_dead_worker_go_back_to_pending_not_unknown(push_service, run):
    """A claim that was never marked sending was never written: it is sent later."""
    subscriptions = [subscribe(push_service) for _ in range(3)]
    campaign = new_campaign(title="t", body="b", link="https://shop.example")
    services.campaign_start(campaign_id=campaign.pk)
    rows = services.deliveries_claim(
        campaign_id=campaign.pk, batch=0, size=10, lease=-1, claim="dead-worker"
    )
    assert len(rows) == 3
    assert delivery.batch_send(campaign_id=campaign.pk, batch=0).outcome == "done"
    campaign.refresh_from_db()
    assert (campaign.status, campaign.delivered, campaign.unknown) == (CampaignStatus.SENT, 3, 0)
    assert sorted(len(push_service.messages_for(s.endpoint)) for s in subscriptions) == [1, 1, 1]


def test_running_a_batch_twice_sends_nothing_more(push_service, run):
    subscriptions = [subscribe(push_service) for _ in range(3)]
    campaign = run()
    assert delivery.batch_send(campaign_id=campaign.pk, batch=0).outcome == "skipped"
    campaign.status = CampaignStatus.SENDING
    campaign.save(update_fields=["status"])
    assert delivery.batch_send(campaign_id=campaign.pk, batch=0).outcome == "done"
    assert len(push_service.received) == len(subscriptions)


def test_a_campaign_is_split_into_batches(push_service, run, settings):
    settings.PUSH_BATCH_SIZE = 2
    for _ in range(5):
        subscribe(push_service)
    campaign = run()
    assert sorted(
        set(Delivery.objects.filter(campaign=campaign).values_list("batch", flat=True))
    ) == [0, 1, 2]
    assert campaign.delivered == 5
    assert PushSubscription.objects.filter(consecutive_failures=0).count() == 5


def test_a_subscription_with_unusable_keys_fails_at_once(push_service, run):
    good = subscribe(push_service)
    bad = subscribe(push_service)
    # Not a point on P-256 (as a storefront bug or a corrupted import could leave it).
    PushSubscription.objects.filter(pk=bad.pk).update(p256dh="BA" + "A" * 85)
    campaign = run()
    rows = _deliveries(campaign)
    assert (rows[bad.pk].status, rows[bad.pk].attempts) == (DeliveryStatus.FAILED, 1)
    assert "Cannot encrypt" in rows[bad.pk].error
    assert rows[good.pk].status == DeliveryStatus.SENT
    assert push_service.requests_count == 1


def test_cancelling_fails_claimed_rows_and_they_are_never_marked_sending(push_service):
    subscriptions = [subscribe(push_service) for _ in range(3)]
    campaign = new_campaign(title="t", body="b", link="https://shop.example")
    services.campaign_start(campaign_id=campaign.pk)
    rows = services.deliveries_claim(
        campaign_id=campaign.pk, batch=0, size=10, lease=60, claim="live-worker"
    )
    services.campaign_cancel(campaign=campaign, actor=None)
    # The worker, about to write its claimed wave, is refused: nothing may be written.
    sendable = services.deliveries_mark_sending(
        campaign_id=campaign.pk, claim="live-worker", ids=[row.pk for row in rows], lease=60
    )
    assert sendable == set()
    campaign.refresh_from_db()
    assert (campaign.status, campaign.failed) == (CampaignStatus.CANCELLED, 3)
    assert set(Delivery.objects.values_list("status", flat=True)) == {DeliveryStatus.FAILED}
    assert delivery.batch_send(campaign_id=campaign.pk, batch=0).outcome == "skipped"
    assert all(push_service.messages_for(s.endpoint) == [] for s in subscriptions)


def test_a_row_is_marked_sending_only_once_its_connection_is_open(
    push_service, run, settings, monkeypatch
):
    """The mark "sending" is what makes a crash leave a row unknown (never sent again): a row
    whose connection cannot be opened must never carry it, so it is retried, not lost."""
    settings.PUSH_MAX_ATTEMPTS = 2
    live = subscribe(push_service)
    dead = subscribe(push_service)
    with socket.socket() as probe:  # a port nothing listens on: connections are refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    PushSubscription.objects.filter(pk=dead.pk).update(endpoint=f"http://127.0.0.1:{port}/push/x")
    marked = []
    mark = services.deliveries_mark_sending

    def spy(**kwargs):
        marked.extend(kwargs["ids"])
        return mark(**kwargs)

    monkeypatch.setattr(services, "deliveries_mark_sending", spy)
    campaign = run()
    rows = _deliveries(campaign)
    assert (rows[live.pk].status, rows[dead.pk].status) == (DeliveryStatus.SENT, "failed")
    assert rows[dead.pk].attempts == 2 and rows[dead.pk].error
    assert rows[live.pk].pk in marked
    assert rows[dead.pk].pk not in marked


def test_a_waves_outcomes_and_mark_are_recorded_exactly_in_few_statements(push_service):
    """Each kind of outcome lands on its row, the subscriptions' health and the counters; a row
    another claim holds is left alone; on PostgreSQL the claim, the record of a wave of mixed
    outcomes (rows, subscriptions' health and counters) and the next mark are one statement
    each, whatever the outcomes."""
    for _ in range(6):
        subscribe(push_service)
    campaign = new_campaign(title="t", body="b", link="https://shop.example")
    services.campaign_start(campaign_id=campaign.pk)
    with CaptureQueriesContext(connection) as claiming:
        rows = services.deliveries_claim(
            campaign_id=campaign.pk, batch=0, size=4, lease=60, claim="w1"
        )
    later = services.deliveries_claim(
        campaign_id=campaign.pk, batch=0, size=10, lease=60, claim="w2"
    )
    assert (len(rows), len(later)) == (4, 2)
    now = timezone.now()
    sent, failing, slowed, unknown = rows

    def outcome(row, status, **fields):
        return services.DeliveryOutcome(
            pk=row.pk, subscription_id=row.subscription_id, status=status, **fields
        )

    outcomes = [
        outcome(sent, DeliveryStatus.SENT, code=201),
        outcome(failing, DeliveryStatus.PENDING, code=503, error="HTTP 503", retry_at=now),
        outcome(
            slowed,
            DeliveryStatus.PENDING,
            code=429,
            error="HTTP 429",
            retry_at=now + timedelta(seconds=5),
            counts_as_attempt=False,
        ),
        outcome(unknown, DeliveryStatus.UNKNOWN, error="Timed out (no complete answer)"),
        # Held by claim w2, not by the claims recorded here: left alone.
        outcome(later[0], DeliveryStatus.SENT, code=201),
    ]
    with CaptureQueriesContext(connection) as recording:
        services.deliveries_record(campaign_id=campaign.pk, outcomes=outcomes, claims=("w1",))
    with CaptureQueriesContext(connection) as marking:
        sendable = services.deliveries_mark_sending(
            campaign_id=campaign.pk, claim="w2", ids=[row.pk for row in later], lease=60
        )
    assert sendable == {row.pk for row in later}
    stored = {d.pk: d for d in Delivery.objects.filter(campaign=campaign)}
    expected = {
        sent.pk: (DeliveryStatus.SENT, 1, 201, "", None),
        failing.pk: (DeliveryStatus.PENDING, 1, 503, "HTTP 503", now),
        slowed.pk: (DeliveryStatus.PENDING, 0, 429, "HTTP 429", now + timedelta(seconds=5)),
        unknown.pk: (DeliveryStatus.UNKNOWN, 1, None, "Timed out (no complete answer)", None),
    }
    for pk, values in expected.items():
        d = stored[pk]
        assert (d.status, d.attempts, d.last_status_code, d.error, d.next_attempt_at) == values
        assert d.claimed_until is None
        assert (d.sent_at is not None) == (pk == sent.pk)
    for row in later:
        assert (stored[row.pk].status, stored[row.pk].attempts) == (DeliveryStatus.SENDING, 0)
        assert stored[row.pk].claimed_until > now
    health = {
        s.pk: (s.last_success_at is not None, s.consecutive_failures)
        for s in PushSubscription.objects.all()
    }
    assert health[sent.subscription_id] == (True, 0)
    assert health[failing.subscription_id] == (False, 1)
    assert health[slowed.subscription_id] == (False, 0)  # a 429 is not a failed attempt
    assert health[unknown.subscription_id] == (False, 1)
    campaign.refresh_from_db()
    assert (campaign.delivered, campaign.failed, campaign.unknown) == (1, 0, 1)
    if connection.vendor == "postgresql":

        def statements(captured):
            return [
                q["sql"]
                for q in captured.captured_queries
                if not q["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))
            ]

        assert len(statements(claiming)) == 1
        assert len(statements(recording)) == 1
        assert len(statements(marking)) == 1


def test_an_error_text_with_a_nul_is_stored_without_it(push_service):
    """A push service's answer body quoted in the error may hold NUL, which PostgreSQL text
    cannot: the wave is recorded all the same, the NUL replaced."""
    subscribe(push_service)
    campaign = new_campaign(title="t", body="b", link="https://shop.example")
    services.campaign_start(campaign_id=campaign.pk)
    [row] = services.deliveries_claim(
        campaign_id=campaign.pk, batch=0, size=10, lease=60, claim="w1"
    )
    services.deliveries_record(
        campaign_id=campaign.pk,
        outcomes=[
            services.DeliveryOutcome(
                pk=row.pk,
                subscription_id=row.subscription_id,
                status=DeliveryStatus.FAILED,
                code=400,
                error="HTTP 400 bad\x00body",
            )
        ],
        claims=("w1",),
    )
    stored = Delivery.objects.get(pk=row.pk)
    assert (stored.status, stored.error) == (DeliveryStatus.FAILED, "HTTP 400 bad\ufffdbody")


def _rows_read(plan: dict, table: str) -> int:
    """Rows the scans of `table` produced or filtered out in an EXPLAIN ANALYZE plan."""
    read = 0
    if plan.get("Relation Name") == table and "Scan" in plan["Node Type"]:
        per_loop = plan["Actual Rows"] + plan.get("Rows Removed by Filter", 0)
        read += per_loop * plan["Actual Loops"]
    for child in plan.get("Plans", []):
        read += _rows_read(child, table)
    return read


def _campaign_with_rows(count: int, *, status: str, batch_size: int) -> Campaign:
    now = timezone.now()
    tag = uuid.uuid4().hex[:8]
    customers = Customer.objects.bulk_create(
        Customer(email=f"plan-{tag}-{i}@example.invalid", created_at=now) for i in range(count)
    )
    subscriptions = PushSubscription.objects.bulk_create(
        PushSubscription(
            customer=customer,
            endpoint=f"https://fcm.googleapis.com/fcm/send/{tag}-{i}",
            p256dh="k",
            auth="a",
            created_at=now,
        )
        for i, customer in enumerate(customers)
    )
    campaign = Campaign.objects.create(
        title="t",
        body="b",
        audience_tab="leads",
        audience_kind="all",
        status=CampaignStatus.SENDING,
        created_at=now,
        send_at=now,
        started_at=now,
    )
    Delivery.objects.bulk_create(
        Delivery(campaign=campaign, subscription=subscription, batch=i // batch_size, status=status)
        for i, subscription in enumerate(subscriptions)
    )
    return campaign


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's plans")
def test_claim_mark_and_record_read_only_the_waves_rows():
    """A campaign's rows are new when it sends: PostgreSQL's statistics were taken before,
    when every row had an outcome (here: an earlier campaign's). The three statements of a
    wave must still read about the wave's rows, not every open row of the campaign (each
    wave's work grew with the campaign's size)."""
    _campaign_with_rows(3000, status=DeliveryStatus.SENT, batch_size=1000)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Delivery._meta.db_table}")
    campaign = _campaign_with_rows(3000, status=DeliveryStatus.PENDING, batch_size=1000)
    now = timezone.now()
    table = Delivery._meta.db_table

    def explain(sql, params):
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params)
            plan = cursor.fetchone()[0]
        plan = json.loads(plan) if isinstance(plan, str) else plan
        return _rows_read(plan[0]["Plan"], table)

    wave, until = 5, now + timedelta(seconds=60)
    claim = {"campaign": campaign.pk, "batch": 1, "now": now, "size": wave}
    claimed = explain(services._PG_CLAIM, claim | {"claim": "w1", "until": until})
    ids = list(Delivery.objects.filter(claim="w1").values_list("pk", "subscription_id"))
    assert len(ids) == wave
    marked = explain(
        services._PG_MARK,
        {
            "campaign": campaign.pk,
            "ids": services._pg_id_array([pk for pk, _ in ids]),
            "claim": "w1",
            "until": until,
        },
    )
    outcomes = [
        {
            "id": pk,
            "subscription_id": sub,
            "status": "sent",
            "code": 201,
            "error": "",
            "retry_at": None,
            "counted": 1,
        }
        for pk, sub in ids
    ]
    recorded = explain(
        services._PG_RECORD,
        {
            "campaign": campaign.pk,
            "outcomes": json.dumps(outcomes),
            "count": len(outcomes),
            "now": now,
            "claims": ["w1"],
        },
    )
    assert Delivery.objects.filter(campaign=campaign, status=DeliveryStatus.SENT).count() == wave
    # The claim reads the wave's pending rows and claims them; the mark and the record only
    # the wave's rows, by primary key.
    rows_read = (claimed, marked, recorded)
    assert claimed <= 2 * wave and marked <= wave and recorded <= wave, rows_read
