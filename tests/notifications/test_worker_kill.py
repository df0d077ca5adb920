"""A real worker process killed with SIGKILL in the middle of a campaign (PostgreSQL only:
the worker is a separate process and needs to see the committed test database)."""

import io
import os
import random
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.management import call_command
from django.utils import timezone

from notifications.models import (
    OPEN_DELIVERY_STATUSES,
    CampaignStatus,
    Delivery,
    DeliveryStatus,
)
from notifications.services import campaign_start
from tests.notifications.fixtures_push import (  # noqa: F401
    new_campaign,
    subscribe,
    vapid_settings,
)
from tests.processes import worker_env

pytestmark = [
    pytest.mark.skipif(
        not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"),
        reason="needs PostgreSQL: the killed worker is another process",
    ),
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.usefixtures("vapid_settings"),
]

WORKER = """
import django
django.setup()
from django.conf import settings
settings.PUSH_WAVE_SIZE = 4
from notifications.delivery import batch_send
batch_send(campaign_id={campaign_id}, batch=0)
"""


def _start_worker(settings, vapid_keys, campaign_id: int) -> subprocess.Popen:
    """A worker process sending batch 0 of the campaign, on the test database."""
    return subprocess.Popen(
        [sys.executable, "-c", WORKER.format(campaign_id=campaign_id)],
        env=worker_env(vapid_keys=vapid_keys),
        cwd=settings.BASE_DIR,
    )


def _start_campaign(push_service, count: int):
    subscriptions = [subscribe(push_service) for _ in range(count)]
    campaign = new_campaign(title="Flash sale", body="Tonight only", link="https://shop.example")
    assert campaign_start(campaign_id=campaign.pk) == [0]
    return campaign, subscriptions


def _leases_run_out() -> None:
    """What waiting out PUSH_CLAIM_LEASE does: the dead worker's claimed rows become stale."""
    Delivery.objects.filter(status__in=[DeliveryStatus.CLAIMED, DeliveryStatus.SENDING]).update(
        claimed_until=timezone.now() - timedelta(seconds=1)
    )


def test_a_killed_worker_process_never_makes_anyone_receive_twice(
    push_service, settings, vapid_keys
):
    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.dummy.DummyBackend"}}
    campaign, subscriptions = _start_campaign(push_service, 24)
    push_service.respond(None, status=201, delay=0.3)  # slow enough to kill it mid-way

    worker = _start_worker(settings, vapid_keys, campaign.pk)
    try:
        deadline = time.monotonic() + 60
        while push_service.requests_count < 10 and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(worker.pid, signal.SIGKILL)
    finally:
        worker.wait(10)
    assert worker.returncode == -signal.SIGKILL
    killed_at = len(push_service.received)
    assert 0 < Delivery.objects.filter(status=DeliveryStatus.PENDING).count() < 24

    # A restarted worker, after the dead one's lease: the campaign completes.
    push_service.respond(None, status=201)
    _leases_run_out()
    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"}}
    call_command("push_resume", stdout=io.StringIO())
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.SENT
    assert campaign.delivered + campaign.unknown == 24 and campaign.failed == 0
    counts = {s.endpoint: len(push_service.messages_for(s.endpoint)) for s in subscriptions}
    assert max(counts.values()) == 1  # nobody received it twice
    assert len(push_service.received) > killed_at
    # Every delivery recorded as sent really arrived once.
    for row in Delivery.objects.filter(status=DeliveryStatus.SENT).select_related("subscription"):
        assert counts[row.subscription.endpoint] == 1


def test_a_worker_killed_again_and_again_at_random_moments_still_sends_each_once(
    push_service, settings, vapid_keys
):
    """Workers killed at random moments (starting, claiming, sending, recording), each
    restarted, then the campaign resumed: it completes and nobody receives it twice."""
    seed = random.SystemRandom().randrange(10**6)
    rng = random.Random(seed)
    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.dummy.DummyBackend"}}
    campaign, subscriptions = _start_campaign(push_service, 60)
    # 15 waves of 4 at 0.6 s each: no worker lives long enough to finish alone, even with the
    # next wave prepared while one is answered (at 0.25 s a worker finished 60 in CI once).
    push_service.respond(None, status=201, delay=0.6)
    kills = 0
    for _ in range(6):
        if not Delivery.objects.filter(status=DeliveryStatus.PENDING).exists():
            break
        worker = _start_worker(settings, vapid_keys, campaign.pk)
        try:
            # Once it has started sending (starting a process takes seconds on a loaded
            # machine), kill it at a random moment: claiming, preparing, writing, recording.
            before = push_service.requests_count
            deadline = time.monotonic() + 60
            while push_service.requests_count == before and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 1.2))
        finally:
            worker.kill()
            worker.wait(10)
        kills += worker.returncode == -signal.SIGKILL
        _leases_run_out()
    assert kills >= 2, f"seed {seed}: the workers finished before being killed"
    sent_by_killed_workers = len(push_service.received)
    assert sent_by_killed_workers > 0, f"seed {seed}: no worker got to send"

    push_service.respond(None, status=201)
    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"}}
    call_command("push_resume", stdout=io.StringIO())
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.SENT, f"seed {seed}"
    assert campaign.delivered + campaign.unknown == 60 and campaign.failed == 0, f"seed {seed}"
    counts = {s.endpoint: len(push_service.messages_for(s.endpoint)) for s in subscriptions}
    assert max(counts.values()) == 1, f"seed {seed}: someone received it twice"
    # Every delivery recorded as sent arrived; one a worker died on may have (at most once).
    received = len(push_service.received)
    assert campaign.delivered <= received <= campaign.delivered + campaign.unknown
    for row in Delivery.objects.filter(status=DeliveryStatus.SENT).select_related("subscription"):
        assert counts[row.subscription.endpoint] == 1, f"seed {seed}"
    assert not Delivery.objects.filter(status__in=OPEN_DELIVERY_STATUSES).exists()
