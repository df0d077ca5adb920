"""Recovery runs by itself: a campaign whose worker died completes with no command run.

django-tasks-db leaves the task of a killed worker RUNNING forever; the campaign's watchdog
(notifications.tasks.watch_campaign) is what notices. The first tests drive the real
database queue in-process (both databases); the last runs real `db_worker` processes on
PostgreSQL and kills them with SIGKILL.
"""

import io
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.management import call_command
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from notifications import services, tasks
from notifications.models import (
    OPEN_DELIVERY_STATUSES,
    Campaign,
    CampaignStatus,
    Delivery,
    DeliveryStatus,
)
from tests.notifications.fixtures_push import (  # noqa: F401
    new_campaign,
    subscribe,
    vapid_settings,
)
from tests.processes import worker_env

pytestmark = [pytest.mark.usefixtures("vapid_settings")]

DB_QUEUE = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}


def _queued(task_function):
    return list(
        DBTaskResult.objects.filter(task_path=task_function.module_path, status="READY")
        .order_by("enqueued_at")
        .values_list("args_kwargs", "run_after")
    )


def _dead_worker_left(campaign, *, claimed: int, sending: int) -> None:
    """What a worker killed mid-batch leaves: its batch task RUNNING, a wave marked sending
    and the next one claimed, both leases since passed."""
    rows = list(Delivery.objects.filter(campaign=campaign).order_by("pk"))
    past = timezone.now() - timedelta(seconds=1)
    for row in rows[:sending]:
        row.status, row.claim, row.claimed_until = DeliveryStatus.SENDING, "dead", past
    for row in rows[sending : sending + claimed]:
        row.status, row.claim, row.claimed_until = DeliveryStatus.CLAIMED, "dead", past
    Delivery.objects.bulk_update(rows, ["status", "claim", "claimed_until"])
    result = tasks.send_batch.enqueue(campaign.pk, 0)
    DBTaskResult.objects.filter(pk=result.id).update(status="RUNNING")


@pytest.mark.django_db
def test_the_watchdog_settles_a_dead_workers_rows_and_re_enqueues_its_batch(push_service, settings):
    settings.TASKS = DB_QUEUE
    for _ in range(10):
        subscribe(push_service)
    campaign = new_campaign()
    assert services.campaign_start(campaign_id=campaign.pk) == [0]
    _dead_worker_left(campaign, claimed=3, sending=4)

    assert tasks.watch_campaign.call(campaign.pk) == "1 batch(es) resumed"
    statuses = list(Delivery.objects.filter(campaign=campaign).values_list("status", flat=True))
    # Claimed but never written: back to pending, to be sent. Maybe written: unknown.
    assert statuses.count(DeliveryStatus.UNKNOWN) == 4
    assert statuses.count(DeliveryStatus.PENDING) == 6
    campaign.refresh_from_db()
    assert campaign.unknown == 4
    [(args, _)] = _queued(tasks.send_batch)
    assert args["args"] == [campaign.pk, 0]
    # Its successor, later; and running it again does not enqueue the batch twice.
    [(args, run_after)] = _queued(tasks.watch_campaign)
    assert args["args"] == [campaign.pk] and run_after > timezone.now()
    assert tasks.watch_campaign.call(campaign.pk) == "0 batch(es) resumed"
    assert len(_queued(tasks.send_batch)) == 1 and len(_queued(tasks.watch_campaign)) == 1

    # The queued batch run completes the campaign; the watchdog then stops.
    DBTaskResult.objects.filter(task_path=tasks.watch_campaign.module_path).delete()
    assert tasks.send_batch.call(campaign.pk, 0) == "done"
    campaign.refresh_from_db()
    assert (campaign.status, campaign.delivered, campaign.unknown) == (CampaignStatus.SENT, 6, 4)
    assert tasks.watch_campaign.call(campaign.pk) == "finished"
    assert _queued(tasks.watch_campaign) == []
    assert (
        max(
            len(push_service.messages_for(d.subscription.endpoint))
            for d in Delivery.objects.filter(campaign=campaign).select_related("subscription")
        )
        == 1
    )


@pytest.mark.django_db
def test_a_batch_starting_sweeps_and_hands_back_other_orphaned_batches(push_service, settings):
    settings.TASKS = DB_QUEUE
    settings.PUSH_BATCH_SIZE = 3
    for _ in range(6):
        subscribe(push_service)
    campaign = new_campaign()
    assert services.campaign_start(campaign_id=campaign.pk) == [0, 1]
    # Batch 1's worker died before it claimed anything; its task stays RUNNING forever.
    orphan = tasks.send_batch.enqueue(campaign.pk, 1)
    DBTaskResult.objects.filter(pk=orphan.id).update(status="RUNNING")
    assert tasks.send_batch.call(campaign.pk, 0) == "done"
    [(args, _)] = _queued(tasks.send_batch)
    assert args["args"] == [campaign.pk, 1]


@pytest.mark.django_db
def test_a_watchdog_of_a_scheduled_campaign_restarts_a_lost_start(push_service, settings):
    settings.TASKS = DB_QUEUE
    subscribe(push_service)
    campaign = new_campaign()  # its start task: enqueued on commit, here never run
    assert tasks.watch_campaign.call(campaign.pk) == "waiting"
    assert [a["args"] for a, _ in _queued(tasks.start_campaign)] == [[campaign.pk]]
    # Not twice while that start is waiting.
    tasks.watch_campaign.call(campaign.pk)
    assert len(_queued(tasks.start_campaign)) == 1


# override_settings rather than assigning settings.TASKS: the task backends are read once
# (an app's ready() may already have), and only its setting_changed signal resets them.
WORKER = """
import django
django.setup()
from django.test.utils import override_settings
override_settings(
    TASKS={{"default": {{"BACKEND": "django_tasks_db.DatabaseBackend"}}}},
    PUSH_CLAIM_LEASE={lease},
    PUSH_WATCHDOG_INTERVAL=1.0,
    PUSH_WAVE_SIZE=4,
    PUSH_CONCURRENCY=4,
).enable()
from django.core.management import call_command
call_command("db_worker", interval=0.1, startup_delay=False)
"""


def _worker(settings, vapid_keys, *, lease: float) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", WORKER.format(lease=lease)],
        env=worker_env(vapid_keys=vapid_keys),
        cwd=settings.BASE_DIR,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.skipif(
    not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"),
    reason="needs PostgreSQL: the workers are other processes",
)
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_real_workers_killed_three_times_the_campaign_completes_by_itself(
    push_service, settings, vapid_keys, django_capture_on_commit_callbacks
):
    settings.TASKS = DB_QUEUE
    subscriptions = [subscribe(push_service) for _ in range(40)]
    push_service.respond(None, status=201, delay=0.2)  # 10 waves of 4: about 2 s of sending
    campaign = new_campaign()
    kills = 0
    worker = _worker(settings, vapid_keys, lease=2.0)
    try:
        for _ in range(3):
            deadline = time.monotonic() + 60
            start = len(push_service.received)
            while len(push_service.received) < start + 4 and time.monotonic() < deadline:
                time.sleep(0.02)
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait(10)
            kills += worker.returncode == -signal.SIGKILL
            worker = _worker(settings, vapid_keys, lease=2.0)
        push_service.respond(None, status=201)
        # No command: the watchdog and the batch sweeps finish the campaign.
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if Campaign.objects.get(pk=campaign.pk).status == CampaignStatus.SENT:
                break
            time.sleep(0.2)
    finally:
        worker.kill()
        worker.wait(10)
    assert kills == 3
    campaign.refresh_from_db()
    assert campaign.status == CampaignStatus.SENT
    assert not Delivery.objects.filter(status__in=OPEN_DELIVERY_STATUSES).exists()
    counts = {s.endpoint: len(push_service.messages_for(s.endpoint)) for s in subscriptions}
    assert max(counts.values()) == 1  # nobody received it twice
    for row in Delivery.objects.filter(status=DeliveryStatus.SENT).select_related("subscription"):
        assert counts[row.subscription.endpoint] == 1
    # Each kill leaves at most one wave of unknown outcome; nothing else is lost.
    assert campaign.unknown <= 3 * 4
    assert campaign.delivered + campaign.unknown == 40 and campaign.failed == 0
    out = io.StringIO()
    call_command("rebuild_push_stats", "--check", stdout=out)
