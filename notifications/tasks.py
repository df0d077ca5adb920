"""Background work of push campaigns (django.tasks; the db_worker command runs it).

The one module that enqueues: services store, delivery decides and returns what to schedule
(`delivery.BatchRun`), and this module turns that into tasks. Nothing imports it back.

Recovery runs by itself. django-tasks-db marks a task RUNNING when a worker takes it and
never looks at it again: a task whose worker was killed stays RUNNING forever and is not run
again. So every sending campaign has a watchdog, `watch_campaign`, re-enqueued with
`run_after` every `PUSH_WATCHDOG_INTERVAL` while the campaign is scheduled or sending. It
enqueues its successor first (a watchdog killed mid-run still has one), settles what dead
workers left (expired claims back to pending, expired "sending" rows unknown) and enqueues
the batches that have work due and no worker holding any of their rows, unless such a task
is already waiting in the queue. Every batch also sweeps the campaign when it starts.
`manage.py push_resume` does the same once, for operators.
"""

from datetime import timedelta

from django.db import transaction
from django.tasks import task
from django.utils import timezone

from notifications import delivery, services
from notifications.conf import push_setting
from notifications.models import Campaign, CampaignStatus


def campaign_submit(**fields) -> Campaign:
    """Create a campaign (services.campaign_create) and enqueue its start once committed."""
    can_defer = start_campaign.get_backend().supports_defer
    with transaction.atomic():
        campaign = services.campaign_create(can_defer=can_defer, **fields)
        transaction.on_commit(lambda: _enqueue_start(campaign))
    return campaign


def _enqueue_start(campaign: Campaign) -> None:
    starter = start_campaign
    if campaign.send_at > timezone.now():
        starter = starter.using(run_after=campaign.send_at)
    starter.enqueue(campaign.pk)


def _can_defer() -> bool:
    return send_batch.get_backend().supports_defer


def _waiting(task_function, campaign_id: int) -> set[tuple]:
    """Arguments of this task's runs still waiting in the database queue for a campaign.

    Only django-tasks-db's queue can be read; with another backend nothing counts as waiting.
    """
    try:
        from django_tasks_db.models import DBTaskResult
    except ImportError:  # pragma: no cover - the project ships django-tasks-db
        return set()
    backend = task_function.get_backend()
    if type(backend).__module__.split(".")[0] != "django_tasks_db":
        return set()
    waiting = DBTaskResult.objects.filter(
        status="READY", task_path=task_function.module_path, backend_name=backend.alias
    ).values_list("args_kwargs", flat=True)
    found = set()
    for args_kwargs in waiting:
        args = tuple((args_kwargs or {}).get("args") or ())
        if args and args[0] == campaign_id:
            found.add(args)
    return found


def _schedule(campaign_id: int, run: delivery.BatchRun, batch: int | None = None) -> None:
    """Enqueue what a batch run asked for: itself later, and orphaned batches now."""
    if run.run_again_at is not None and batch is not None:
        send_batch.using(run_after=run.run_again_at).enqueue(campaign_id, batch)
    if run.orphan_batches and _can_defer():
        batches_resume(campaign_id=campaign_id, batches=run.orphan_batches)


def batches_resume(*, campaign_id: int, batches) -> int:
    """Enqueue these batches of a campaign unless a run of each is already waiting."""
    waiting = _waiting(send_batch, campaign_id)
    count = 0
    for batch in batches:
        if (campaign_id, batch) not in waiting:
            send_batch.enqueue(campaign_id, batch)
            count += 1
    return count


def watchdog_ensure(campaign_id: int) -> bool:
    """Enqueue the campaign's watchdog unless one is already waiting (or tasks cannot wait)."""
    if not _can_defer() or _waiting(watch_campaign, campaign_id):
        return False
    run_after = timezone.now() + timedelta(seconds=push_setting("PUSH_WATCHDOG_INTERVAL"))
    watch_campaign.using(run_after=run_after).enqueue(campaign_id)
    return True


def campaign_recover(campaign_id: int) -> int:
    """Settle a sending campaign after dead workers and re-enqueue its orphaned batches."""
    campaign = Campaign.objects.filter(pk=campaign_id).first()
    if campaign is None or campaign.status != CampaignStatus.SENDING:
        return 0
    services.deliveries_sweep(
        campaign_id=campaign_id, give_up_at=delivery.retry_window_end(campaign)
    )
    orphans = services.delivery_batches_to_resume(campaign_id=campaign_id)
    resumed = batches_resume(campaign_id=campaign_id, batches=orphans) if orphans else 0
    services.campaign_finish_if_done(campaign_id=campaign_id)
    return resumed


@task(queue_name="default")
def start_campaign(campaign_id: int) -> int:
    """Freeze the audience of a due campaign and enqueue its batches; returns their number."""
    # The watchdog first: if this worker dies while starting, the watchdog starts it again.
    watchdog_ensure(campaign_id)
    # campaign_start has committed the delivery rows, so the batches can be enqueued now.
    batches = services.campaign_start(campaign_id=campaign_id)
    for batch in batches:
        send_batch.enqueue(campaign_id, batch)
    return len(batches)


@task(queue_name="default")
def send_batch(campaign_id: int, batch: int) -> str:
    """Send one batch of a campaign (see notifications/delivery.py)."""
    run = delivery.batch_send(campaign_id=campaign_id, batch=batch, can_defer=_can_defer())
    _schedule(campaign_id, run, batch)
    return run.outcome


@task(queue_name="default")
def watch_campaign(campaign_id: int) -> str:
    """While a campaign is scheduled or sending, recover what dead workers left behind."""
    campaign = Campaign.objects.filter(pk=campaign_id).only("status", "send_at").first()
    if campaign is None or campaign.status not in (
        CampaignStatus.SCHEDULED,
        CampaignStatus.SENDING,
    ):
        return "finished"
    # The successor first, so a watchdog killed now still has one.
    watchdog_ensure(campaign_id)
    if campaign.status == CampaignStatus.SCHEDULED:
        due = campaign.send_at <= timezone.now()
        if due and not _waiting(start_campaign, campaign_id):
            start_campaign.enqueue(campaign_id)  # its start task died with its worker
        return "waiting"
    return f"{campaign_recover(campaign_id)} batch(es) resumed"
