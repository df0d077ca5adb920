"""Push delivery under the faults real push services and networks produce, with real
`manage.py db_worker` processes: answers that come after the client's timeout, connections
dropped after the service accepted the request, a storm of 429, transient 500s, refused
connections, workers killed with SIGKILL several times in one campaign, two workers at once.

Each test checks, from the push service's own record (tests/push_service.py), the promise of
notifications/README.md: nobody received the campaign twice, every row recorded as delivered
was received, every row is in a final state, the campaign completed without any manual command,
and `rebuild_push_stats --check` finds no drift. Campaigns are small and timeouts short (the
workers' settings are in tests/notifications/faults.py), so all of them take about a minute
and a half; they run with RUN_FAULT_TESTS=1 on PostgreSQL (the workers are other processes).
"""

import random
import time
from collections import Counter

import pytest
from django_tasks_db.models import DBTaskResult

from notifications.models import Delivery
from tests.markers import fault_test
from tests.notifications.faults import assert_promise, statuses, wait_until_sent
from tests.notifications.fixtures_push import (  # noqa: F401
    new_campaign,
    subscribe,
    vapid_settings,
)

pytestmark = [
    *fault_test(
        needs_postgresql="needs PostgreSQL: the workers are other processes",
        why_opt_in="push faults with real worker processes (a few minutes)",
    ),
    pytest.mark.usefixtures("vapid_settings"),
]


def _campaign(push_service, count: int, title: str):
    for _ in range(count):
        subscribe(push_service)
    return new_campaign(title=title, body="Fault test", link="https://shop.example")


def _wait_for_requests(push_service, count: int, *, within: float) -> bool:
    """Whether the service has had `count` requests within `within` seconds."""
    deadline = time.monotonic() + within
    while push_service.requests_count < count:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_answers_after_the_client_timeout_are_never_sent_again(push_service, workers):
    """The service takes each message and answers after 2 s, past the 1 s timeout, for 4 s:
    those requests reached it, so sending them again would deliver them twice."""
    push_service.respond(None, status=201, delay=2.0, for_seconds=4)
    campaign = _campaign(push_service, 40, "Slow service")
    workers.start()

    took = wait_until_sent(campaign, within=90, workers=workers)
    result = assert_promise(campaign, push_service, label=f"timeouts ({took:.1f} s)")
    slow = [r for r in push_service.requests if r.delayed >= 2.0]
    assert slow, "no request outlived the client's timeout: the test proved nothing"
    # What timed out was received once and is "unknown"; nothing was lost.
    assert result.lost == 0 and result.received == 40
    assert campaign.failed == 0


def test_connections_dropped_after_the_service_accepted_are_never_sent_again(push_service, workers):
    """A third of the requests are read in full and accepted, then the connection is closed
    without an answer: the sender cannot tell them from a network error before sending."""
    workers.configure("PUSH_CONCURRENCY = 5\n")
    push_service.respond(None, status=201, drop=True, fraction=0.3, seed=11, for_seconds=6)
    campaign = _campaign(push_service, 40, "Dropped connections")
    workers.start()

    took = wait_until_sent(campaign, within=90, workers=workers)
    result = assert_promise(campaign, push_service, label=f"dropped connections ({took:.1f} s)")
    dropped = [r for r in push_service.requests if r.status is None and r.delivered]
    assert dropped, "no connection was dropped: the test proved nothing"
    assert result.lost == 0 and result.received == 40
    assert campaign.failed == 0


def _most_429s(push_service) -> int:
    """The most 429 answers one subscription received."""
    counts = Counter(r.endpoint for r in push_service.requests if r.status == 429)
    return max(counts.values(), default=0)


def test_a_429_storm_fails_nothing(push_service, workers):
    """8 s of `429 Retry-After: 1`: each subscription is refused more often than
    PUSH_MAX_ATTEMPTS allows failures, and a service that asks us to slow down never makes
    us give up."""
    workers.configure("PUSH_MAX_ATTEMPTS = 3\n")
    push_service.respond(None, status=429, retry_after=1, for_seconds=8)
    campaign = _campaign(push_service, 30, "Slow down")
    workers.start()

    took = wait_until_sent(campaign, within=90, workers=workers)
    result = assert_promise(campaign, push_service, label=f"429 storm ({took:.1f} s)")
    assert (campaign.delivered, campaign.failed, campaign.unknown) == (30, 0, 0), str(result)
    throttled = [r for r in push_service.requests if r.status == 429]
    assert _most_429s(push_service) > 3, "no subscription was refused past the attempts"
    # Retry-After: 1 was honoured: about one request per subscription per second, not more.
    assert len(throttled) <= 30 * (8 + 3), len(throttled)


def test_a_429_storm_with_http_dates_fails_nothing(push_service, workers):
    """The same with Retry-After as an HTTP date (RFC 9110 allows both forms)."""
    workers.configure("PUSH_MAX_ATTEMPTS = 2\n")
    push_service.respond(None, status=429, retry_after=2, retry_after_date=True, for_seconds=7)
    campaign = _campaign(push_service, 20, "Slow down, dated")
    workers.start()

    took = wait_until_sent(campaign, within=90, workers=workers)
    result = assert_promise(campaign, push_service, label=f"429 storm, dates ({took:.1f} s)")
    assert (campaign.delivered, campaign.failed, campaign.unknown) == (20, 0, 0), str(result)
    throttled = [r for r in push_service.requests if r.status == 429]
    assert _most_429s(push_service) > 2, "no subscription was refused past the attempts"
    # Two seconds (the date's one-second precision aside) between attempts of a subscription.
    assert len(throttled) <= 20 * (7 + 3), len(throttled)


def test_transient_500s_are_retried_until_delivered(push_service, workers):
    push_service.respond(None, status=500, fraction=0.4, seed=5, for_seconds=4)
    campaign = _campaign(push_service, 40, "Flaky service")
    workers.start()

    took = wait_until_sent(campaign, within=90, workers=workers)
    result = assert_promise(campaign, push_service, label=f"transient 500s ({took:.1f} s)")
    assert any(r.status == 500 for r in push_service.requests)
    # A 500 is an answer: nothing was delivered, so retrying is safe and everyone gets it.
    assert (campaign.delivered, campaign.failed, campaign.unknown) == (40, 0, 0), str(result)


def test_refused_connections_are_retried_until_delivered(push_service, workers):
    campaign = _campaign(push_service, 40, "Outage")
    push_service.set_down(True)
    workers.start()
    deadline = time.monotonic() + 60
    while not Delivery.objects.filter(campaign=campaign).exists():
        assert time.monotonic() < deadline, workers.logs()
        time.sleep(0.1)
    push_service.down_for(3)  # three more seconds from the campaign's start

    took = wait_until_sent(campaign, within=90, workers=workers)
    result = assert_promise(campaign, push_service, label=f"refused connections ({took:.1f} s)")
    assert (campaign.delivered, campaign.failed, campaign.unknown) == (40, 0, 0), str(result)


def test_workers_killed_again_and_again_in_one_campaign(push_service, workers):
    """SIGKILL the sending worker three times at random moments, each time starting a new one
    (what a supervisor does); the campaign then completes by itself: no push_resume."""
    workers.configure("PUSH_WAVE_SIZE = 5\nPUSH_BATCH_SIZE = 30\nPUSH_CONCURRENCY = 5\n")
    seed = random.SystemRandom().randrange(10**6)
    rng = random.Random(seed)
    push_service.respond(None, status=201, delay=0.2)  # 12 waves of 5 take a few seconds
    campaign = _campaign(push_service, 60, "Killed workers")

    for kill in range(1, 4):
        before = push_service.requests_count
        worker = workers.start()
        # A new worker must pick the campaign up by itself, whatever the killed one held
        # (its task, its claimed rows), within a few leases.
        assert _wait_for_requests(push_service, before + 1, within=30), (
            f"seed {seed}: after kill {kill - 1}, a new worker sent nothing for 30 s: the"
            f" campaign was not recovered without a command. rows {statuses(campaign)}"
        )
        time.sleep(rng.uniform(0.1, 1.5))
        workers.kill(worker)
    assert workers.killed == 3
    workers.start()

    took = wait_until_sent(campaign, within=120, workers=workers)
    result = assert_promise(campaign, push_service, label=f"kill -9 x3, seed {seed} ({took:.1f} s)")
    assert campaign.failed == 0, f"seed {seed}: {result}"
    assert campaign.delivered + campaign.unknown == 60, f"seed {seed}: {result}"
    # Only requests a killed worker may have written can be unknown and never received: a
    # wave is marked sending once its connections are open and written right after, so a
    # kill can only catch one wave (5) between that mark and the write, never claimed rows.
    assert result.unknown_not_received <= 3 * 5, f"seed {seed}: {result}"


def test_two_workers_at_once_send_each_subscription_once(push_service, workers):
    workers.configure("PUSH_BATCH_SIZE = 10\n")
    # Slow enough answers that a batch keeps its worker busy while the other takes the next.
    push_service.respond(None, status=201, delay=0.2)
    # Both workers poll before the campaign's batches exist: one worker alone could take
    # all six before the other has started (about a second of CPU to start Django).
    workers.start()
    workers.start()
    workers.wait_started()
    campaign = _campaign(push_service, 60, "Two workers")

    took = wait_until_sent(campaign, within=90, workers=workers)
    assert_promise(campaign, push_service, label=f"two workers ({took:.1f} s)")
    assert (campaign.delivered, campaign.failed, campaign.unknown) == (60, 0, 0)
    assert len(workers.alive()) == 2
    # Both workers sent batches of it.
    ran = DBTaskResult.objects.filter(task_path="notifications.tasks.send_batch")
    assert len({worker for ids in ran.values_list("worker_ids", flat=True) for worker in ids}) == 2
