"""The push service down for a full minute during a campaign: every delivery arrives once.

A real `manage.py db_worker` process, with the production settings (so the production retry
policy of notifications/conf.py: nothing shortened), sends a campaign to 300 subscriptions of
the local push service (tests/push_service.py) while that service refuses connections. The
service stays down for 60 s, measured from the worker's first refused attempt, then comes
back; the campaign must complete with every subscription receiving it exactly once.

It takes about 80-90 s, so it only runs with RUN_FAULT_TESTS=1 (CI sets it for the
PostgreSQL run); PostgreSQL because the worker is another process reading the test database.
"""

import subprocess
import sys
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
from tests.processes import stop, worker_env

pytestmark = [
    *fault_test(
        needs_postgresql="needs PostgreSQL: the worker is another process",
        why_opt_in="keeps a push service down for a minute (about 90 s)",
    ),
    pytest.mark.usefixtures("vapid_settings"),
]

SUBSCRIPTIONS = 300
OUTAGE = 60.0  # seconds the service refuses connections after the first refused attempt
# After the service is back, each delivery is retried within the longest wait (60 s x 1.25);
# the rest is slack for the worker's polling and a busy two-core machine.
RECOVERY_BOUND = DEFAULTS["PUSH_RETRY_MAX_DELAY"] * 1.25 + 30


@pytest.fixture
def db_worker(settings, vapid_keys, tmp_path):
    """A `manage.py db_worker` process on the test database, with the production settings."""
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    env = worker_env(
        vapid_keys=vapid_keys,
        settings_module="backoffice.settings",
        DEBUG="0",
        SECRET_KEY="push-outage-test",
    )
    log_path = tmp_path / "db_worker.log"
    with log_path.open("w") as log:
        worker = subprocess.Popen(
            [sys.executable, "manage.py", "db_worker"],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        worker.log = lambda: log_path.read_text()[-3000:]
        try:
            yield worker
        finally:
            stop(worker, timeout=30)


def _statuses(campaign) -> dict[str, int]:
    rows = Delivery.objects.filter(campaign=campaign)
    return {status: rows.filter(status=status).count() for status in DeliveryStatus.values}


@pytest.mark.xfail(
    strict=False,
    reason=(
        "Open in issue 11 (2026-12-01 00:22 UTC run): with the new delivery states the real "
        "db_worker made no refused attempt within 60 s of the service going down; the "
        "shorter refused-connection fault test (test_push_faults.py) passes. To investigate."
    ),
)
def test_a_campaign_sent_while_the_push_service_is_down_for_a_minute_completes(
    push_service, db_worker
):
    subscriptions = [subscribe(push_service) for _ in range(SUBSCRIPTIONS)]
    push_service.set_down(True)
    down_at = time.monotonic()
    campaign = new_campaign(title="Back soon", body="Outage sale", link="https://shop.example")
    rows = Delivery.objects.filter(campaign=campaign)

    # The worker starts the campaign and its first attempts are refused.
    deadline = time.monotonic() + 60
    while not rows.filter(attempts__gte=1, status=DeliveryStatus.PENDING).exists():
        assert db_worker.poll() is None, db_worker.log()
        assert time.monotonic() < deadline, ("no refused attempt", db_worker.log())
        time.sleep(0.2)
    first_refused_at = time.monotonic()

    # Down for a full minute from there: deliveries keep retrying, none is given up.
    while time.monotonic() < first_refused_at + OUTAGE:
        assert db_worker.poll() is None, db_worker.log()
        assert not rows.filter(status=DeliveryStatus.FAILED).exists(), _statuses(campaign)
        time.sleep(1)
    during = _statuses(campaign)
    attempts = sorted(set(rows.values_list("attempts", flat=True)))
    push_service.set_down(False)
    up_at = time.monotonic()
    up_wall = timezone.now()
    assert during[DeliveryStatus.PENDING] + during[DeliveryStatus.SENDING] == SUBSCRIPTIONS
    assert push_service.received == []
    # Retried several times in the minute (2, 4, 8, 16 and 32 s apart), not hammered.
    assert attempts[0] >= 4 and attempts[-1] <= 6, attempts

    # Back up: the campaign completes within the longest retry wait (plus slack).
    campaign.refresh_from_db()
    while campaign.status != CampaignStatus.SENT:
        assert db_worker.poll() is None, db_worker.log()
        assert time.monotonic() - up_at < RECOVERY_BOUND, (_statuses(campaign), db_worker.log())
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
