"""The push service down for a long outage during a campaign: every delivery arrives once.

A real `manage.py db_worker` process sends a campaign to the local push service
(tests/push_service.py) while that service refuses connections; the service stays down for
the production policy's "minute", then comes back, and the campaign must complete with every
subscription receiving it exactly once, without any manual command.

The worker runs the production delivery policy of notifications/conf.py with every duration
scaled by SCALE (retry delays, the inline-wait limit, the watchdog, the lease, the timeout),
so the outage and the recovery keep their production shape in a fifth of the time: the same
number of attempts in the outage, the same deferrals of the batch to the task queue for the
longer waits, the longest wait after the service is back. The production durations
themselves are checked by test_retry_schedule.py.

PostgreSQL only, with RUN_FAULT_TESTS=1 (CI sets it for the PostgreSQL run): the worker is
another process reading the test database. About 30 s.
"""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from notifications.conf import DEFAULTS
from notifications.models import (
    CampaignStatus,
    Delivery,
    DeliveryStatus,
    PushSubscription,
    SubscriptionStatus,
)
from tests.markers import fault_test
from tests.notifications.fixtures_push import (  # noqa: F401
    new_campaign,
    subscribe,
    vapid_settings,
)

pytestmark = [
    *fault_test(
        needs_postgresql="needs PostgreSQL: the worker is another process",
        why_opt_in="keeps a push service down for a while (about 30 s)",
    ),
    pytest.mark.usefixtures("vapid_settings"),
]

SCALE = 0.2
DURATIONS = (
    "PUSH_RETRY_BASE_DELAY",
    "PUSH_RETRY_MAX_DELAY",
    "PUSH_MAX_INLINE_WAIT",
    "PUSH_WATCHDOG_INTERVAL",
    "PUSH_CLAIM_LEASE",
    "PUSH_REQUEST_TIMEOUT",
)
COUNTS = ("PUSH_MAX_ATTEMPTS", "PUSH_BATCH_SIZE", "PUSH_WAVE_SIZE", "PUSH_CONCURRENCY")
WORKER_SETTINGS = "".join(
    [f"{name} = {DEFAULTS[name] * SCALE!r}\n" for name in DURATIONS]
    + [f"{name} = {DEFAULTS[name]!r}\n" for name in COUNTS]
)
SUBSCRIPTIONS = 120  # two waves of the default size
OUTAGE = 60 * SCALE  # seconds the service refuses connections after the first refused attempt
LONGEST_WAIT = DEFAULTS["PUSH_RETRY_MAX_DELAY"] * SCALE * 1.25
# After the service is back, each delivery is retried within the longest wait; the rest is
# slack for the worker's polling and a busy two-core machine.
RECOVERY_BOUND = LONGEST_WAIT + 15


def _statuses(campaign) -> dict[str, int]:
    rows = Delivery.objects.filter(campaign=campaign)
    return {status: rows.filter(status=status).count() for status in DeliveryStatus.values}


def _errors(rows) -> dict[str, int]:
    return {
        error: rows.filter(error=error).count()
        for error in set(rows.values_list("error", flat=True))
    }


def test_a_campaign_sent_while_the_push_service_is_down_for_a_long_outage_completes(
    push_service, workers
):
    subscriptions = [subscribe(push_service) for _ in range(SUBSCRIPTIONS)]
    push_service.set_down(True)
    down_at = time.monotonic()
    workers.configure(WORKER_SETTINGS)
    worker = workers.start()
    campaign = new_campaign(title="Back soon", body="Outage sale", link="https://shop.example")
    rows = Delivery.objects.filter(campaign=campaign)

    # The worker starts the campaign and its first attempts are refused.
    deadline = time.monotonic() + 30
    while not rows.filter(attempts__gte=1, status=DeliveryStatus.PENDING).exists():
        assert worker.poll() is None, workers.logs()
        # A row settled before any refused attempt (an endpoint the worker will not write
        # to, say) would make this wait pointless: say so at once.
        settled = rows.exclude(status__in=[DeliveryStatus.PENDING, DeliveryStatus.CLAIMED])
        settled = settled.exclude(status=DeliveryStatus.SENDING)
        assert not settled.exists(), (_statuses(campaign), _errors(rows), workers.logs())
        assert time.monotonic() < deadline, ("no refused attempt", workers.logs())
        time.sleep(0.1)
    first_refused_at = time.monotonic()

    # Down for the (scaled) minute from there: deliveries keep retrying, none is given up.
    while time.monotonic() < first_refused_at + OUTAGE:
        assert worker.poll() is None, workers.logs()
        assert not rows.filter(status=DeliveryStatus.FAILED).exists(), _errors(rows)
        time.sleep(0.5)
    during = _statuses(campaign)
    attempts = sorted(set(rows.values_list("attempts", flat=True)))
    push_service.set_down(False)
    up_at = time.monotonic()
    up_wall = timezone.now()
    assert during[DeliveryStatus.PENDING] + during[DeliveryStatus.SENDING] == SUBSCRIPTIONS
    assert push_service.received == []
    # Retried several times in the minute (2, 4, 8, 16 and 32 s apart, scaled), not hammered.
    assert attempts[0] >= 4 and attempts[-1] <= 6, attempts

    # Back up: the campaign completes within the longest retry wait (plus slack).
    campaign.refresh_from_db()
    while campaign.status != CampaignStatus.SENT:
        assert worker.poll() is None, workers.logs()
        assert time.monotonic() - up_at < RECOVERY_BOUND, (_statuses(campaign), workers.logs())
        time.sleep(0.5)
        campaign.refresh_from_db()
    recovered_in = time.monotonic() - up_at
    print(
        f"\npush service down {up_at - down_at:.1f} s ({up_at - first_refused_at:.1f} s after"
        f" the first refused attempt); attempts per delivery at the end of the outage:"
        f" {attempts}; campaign sent {recovered_in:.1f} s after the service came back"
    )

    assert (campaign.recipients, campaign.delivered) == (SUBSCRIPTIONS, SUBSCRIPTIONS)
    assert (campaign.failed, campaign.expired, campaign.unknown) == (0, 0, 0)
    assert campaign.finished_at is not None
    # Every subscription received it exactly once, as sent (the service decrypted each).
    assert len(push_service.received) == SUBSCRIPTIONS
    for subscription in subscriptions:
        [message] = push_service.messages_for(subscription.endpoint)
        assert message.json()["title"] == "Back soon"
        assert message.topic == f"campaign-{campaign.pk}"
        assert message.received_at >= up_wall - timedelta(seconds=1)
    assert _statuses(campaign)[DeliveryStatus.SENT] == SUBSCRIPTIONS
    for row in rows:
        assert row.last_status_code == 201 and row.sent_at is not None
        assert attempts[0] < row.attempts <= DEFAULTS["PUSH_MAX_ATTEMPTS"]
    assert (
        PushSubscription.objects.filter(
            status=SubscriptionStatus.ACTIVE, consecutive_failures=0, last_success_at__isnull=False
        ).count()
        == SUBSCRIPTIONS
    )
