"""The default retry schedule outlasts a push service that is down for more than a minute.

The test settings shorten the retry delays for the rest of the suite; these tests remove that
override, so they check the defaults of notifications/conf.py, the ones production runs with.
"""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from notifications import delivery
from notifications.conf import push_setting
from notifications.models import Campaign, CampaignStatus, Delivery, DeliveryStatus
from notifications.services import campaign_start
from tests.notifications.fixtures_push import send_campaign, subscribe, vapid_settings  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("vapid_settings")]

# What the defaults must give, in seconds, before the jitter: the wait after the 1st, 2nd, ...
# failed attempt, until the last attempt (the 10th), after which the delivery fails.
DEFAULT_WAITS = [2, 4, 8, 16, 32, 60, 60, 60, 60]
LOW, HIGH = delivery.RETRY_JITTER


@pytest.fixture
def production_retry_settings(settings):
    for name in ("PUSH_MAX_ATTEMPTS", "PUSH_RETRY_BASE_DELAY", "PUSH_RETRY_MAX_DELAY"):
        if hasattr(settings, name):
            delattr(settings, name)
    return settings


@pytest.mark.usefixtures("production_retry_settings")
def test_the_default_waits_add_up_to_five_minutes_in_jittered_steps():
    assert (LOW, HIGH) == (1.0, 1.25)
    shortest, longest = [], []
    for attempts, nominal in enumerate(DEFAULT_WAITS, start=1):
        samples = [delivery.retry_delay(attempts) for _ in range(2000)]
        assert all(nominal * LOW <= s <= nominal * HIGH for s in samples), attempts
        # Jittered, not a constant: retries of one wave do not all hit the service at once.
        assert max(samples) - min(samples) > 0.15 * nominal
        shortest.append(min(samples))
        longest.append(max(samples))
    # A delivery is given up only after more than a minute of waiting (in fact five)...
    assert sum(shortest) > 300 > 60
    assert sum(longest) <= 1.25 * sum(DEFAULT_WAITS) == 377.5
    # ...without hammering: at most 5 attempts in the first minute of an outage, never two
    # within 2 s, and after the service is back every delivery is tried within 75 s.
    earliest_attempts = [sum(shortest[:i]) for i in range(len(shortest) + 1)]
    assert len([t for t in earliest_attempts if t < 60]) == 5
    assert min(shortest) >= 2 and max(longest) <= 75


def test_the_cap_holds_for_any_number_of_attempts(settings):
    settings.PUSH_RETRY_BASE_DELAY = 1.0
    settings.PUSH_RETRY_MAX_DELAY = 5.0
    assert 2.0 <= delivery.retry_delay(2) <= 2.5
    for attempts in (4, 10, 100):
        assert 5.0 <= delivery.retry_delay(attempts) <= 6.25


@pytest.mark.parametrize("outage", ["connection refused", "503"])
def test_a_delivery_walks_the_default_schedule_during_an_outage_then_fails(
    push_service, production_retry_settings, django_capture_on_commit_callbacks, outage
):
    """Each failed attempt is recorded with the next default wait; the 10th fails.

    The worker hands every wait back to the queue (PUSH_MAX_INLINE_WAIT 0) and the test moves
    the clock by making the retry due, so the five minutes take a second.
    """
    settings = production_retry_settings
    settings.PUSH_MAX_INLINE_WAIT = 0
    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.dummy.DummyBackend"}}
    subscription = subscribe(push_service)
    if outage == "connection refused":
        push_service.set_down(True)
    else:
        push_service.respond(None, status=int(outage[:3]))
    campaign = send_campaign(django_capture_on_commit_callbacks)
    assert campaign_start(campaign_id=campaign.pk) == [0]

    waited = []
    for attempts, nominal in enumerate(DEFAULT_WAITS, start=1):
        before = timezone.now()
        run = delivery.batch_send(campaign_id=campaign.pk, batch=0, can_defer=True)
        assert run.outcome == "deferred"
        after = timezone.now()
        row = Delivery.objects.get(campaign=campaign)
        assert (row.status, row.attempts) == (DeliveryStatus.PENDING, attempts)
        assert row.error
        # next_attempt_at is rounded to 0.1 s.
        assert row.next_attempt_at - before >= timedelta(seconds=nominal * LOW - 0.05)
        assert row.next_attempt_at - after <= timedelta(seconds=nominal * HIGH + 0.05)
        waited.append((row.next_attempt_at - after).total_seconds())
        Delivery.objects.filter(pk=row.pk).update(
            next_attempt_at=timezone.now() - timedelta(seconds=1)
        )
    assert sum(waited) > 60

    assert delivery.batch_send(campaign_id=campaign.pk, batch=0).outcome == "done"
    row = Delivery.objects.get(campaign=campaign)
    assert (row.status, row.attempts) == (DeliveryStatus.FAILED, len(DEFAULT_WAITS) + 1)
    campaign.refresh_from_db()
    assert (campaign.status, campaign.failed, campaign.delivered) == (CampaignStatus.SENT, 1, 0)
    assert push_service.received == []
    subscription.refresh_from_db()
    assert subscription.consecutive_failures == len(DEFAULT_WAITS) + 1


@pytest.mark.parametrize("retry_after", [None, 2])
def test_429_never_uses_up_attempts_only_the_retry_window_ends_it(
    push_service, production_retry_settings, django_capture_on_commit_callbacks, retry_after
):
    """A push service asking to slow down (429, with Retry-After or without; the HTTP-date
    form is parsed in test_http1.py) is retried far beyond PUSH_MAX_ATTEMPTS; only
    PUSH_RETRY_WINDOW ends it."""
    settings = production_retry_settings
    settings.PUSH_MAX_INLINE_WAIT = 0
    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.dummy.DummyBackend"}}
    subscribe(push_service)
    push_service.respond(None, status=429, retry_after=retry_after)
    campaign = send_campaign(django_capture_on_commit_callbacks)
    assert campaign_start(campaign_id=campaign.pk) == [0]
    for _ in range(15):  # more than PUSH_MAX_ATTEMPTS (10)
        before = timezone.now()
        run = delivery.batch_send(campaign_id=campaign.pk, batch=0, can_defer=True)
        assert run.outcome == "deferred"
        after = timezone.now()
        row = Delivery.objects.get(campaign=campaign)
        assert (row.status, row.attempts, row.last_status_code) == ("pending", 0, 429)
        # The retry is due Retry-After (or the first backoff step) after the answer, which
        # came between `before` and `after`.
        earliest = (row.next_attempt_at - after).total_seconds()
        latest = (row.next_attempt_at - before).total_seconds()
        if retry_after:
            assert earliest <= 2.01 and latest >= 1.99
        else:
            assert latest >= 2 and earliest <= 2.5 + 0.01
        # Moving the clock past the wait: the retry is due and the origin's pause is over.
        Delivery.objects.filter(pk=row.pk).update(
            next_attempt_at=timezone.now() - timedelta(seconds=1)
        )
        delivery._sender()[2].clear()
    # The window closes (the campaign started long ago): what is still pending fails.
    Campaign.objects.filter(pk=campaign.pk).update(started_at=timezone.now() - timedelta(hours=5))
    assert delivery.batch_send(campaign_id=campaign.pk, batch=0).outcome == "done"
    row = Delivery.objects.get(campaign=campaign)
    assert row.status == DeliveryStatus.FAILED and "PUSH_RETRY_WINDOW" in row.error
    campaign.refresh_from_db()
    assert (campaign.status, campaign.failed) == (CampaignStatus.SENT, 1)
    assert push_service.received == []


def test_rows_held_by_a_pause_that_outlasts_the_window_fail_without_being_sent(
    push_service, production_retry_settings, django_capture_on_commit_callbacks
):
    """A 429 with a long Retry-After pauses the push service past the end of the retry
    window: the rows it holds back fail at once, unsent. They were released due at the
    window's end (already past) before, so the batch claimed and held them again without
    sleeping until the pause was over, then sent them after the window."""
    settings = production_retry_settings
    settings.PUSH_MAX_INLINE_WAIT = 0
    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.dummy.DummyBackend"}}
    subscribe(push_service)
    push_service.respond(None, status=429, retry_after=4)
    campaign = send_campaign(django_capture_on_commit_callbacks)
    assert campaign_start(campaign_id=campaign.pk) == [0]
    assert delivery.batch_send(campaign_id=campaign.pk, batch=0, can_defer=True).outcome == (
        "deferred"
    )
    asked = push_service.requests_count
    # The retry is due, the origin still paused (4 s), and the window closes in 1 s (a
    # window already closed is the sweep's, at the batch's start).
    Delivery.objects.filter(campaign=campaign).update(
        next_attempt_at=timezone.now() - timedelta(seconds=1)
    )
    window = timedelta(seconds=push_setting("PUSH_RETRY_WINDOW"))
    Campaign.objects.filter(pk=campaign.pk).update(
        started_at=timezone.now() - window + timedelta(seconds=1)
    )
    started = time.monotonic()
    assert delivery.batch_send(campaign_id=campaign.pk, batch=0).outcome == "done"
    assert time.monotonic() - started < 3, "the batch waited for the pause to end"
    assert push_service.requests_count == asked
    row = Delivery.objects.get(campaign=campaign)
    assert (row.status, row.attempts) == (DeliveryStatus.FAILED, 0)
    assert row.error == delivery.PAUSED_PAST_WINDOW
    campaign.refresh_from_db()
    assert (campaign.status, campaign.failed) == (CampaignStatus.SENT, 1)
