"""The daily recompute of the lifecycle groups, as a django.tasks task that schedules itself.

django-tasks-db has no periodic tasks; periodic work here is done the way the push watchdog
does it (notifications/tasks.py): the task enqueues its successor with `run_after` (the next
LIFECYCLE_RECOMPUTE_HOUR in the shop's time zone) before doing anything, unless one is already
waiting, so a worker killed mid-run still leaves the next day's run in the queue. `migrate`
starts the chain (post_migrate, see apps.py) and so does every run of the
`lifecycle_recompute` command; a deployment that prefers cron runs that command daily instead
(README, "Lifecycle groups").
"""

from datetime import datetime, time, timedelta

from django.conf import settings
from django.tasks import task
from django.utils import timezone

from lifecycle import services


def next_run_at(now: datetime) -> datetime:
    """The next LIFECYCLE_RECOMPUTE_HOUR o'clock in the shop's time zone after `now`."""
    zone = timezone.get_default_timezone()
    local = now.astimezone(zone)
    hour = getattr(settings, "LIFECYCLE_RECOMPUTE_HOUR", 3)
    run = datetime.combine(local.date(), time(hour), tzinfo=zone)
    if run <= local:
        run = datetime.combine(local.date() + timedelta(days=1), time(hour), tzinfo=zone)
    return run


def _waiting() -> bool:
    """Whether a run of the daily task is waiting in django-tasks-db's queue."""
    try:
        from django_tasks_db.models import DBTaskResult
    except ImportError:  # pragma: no cover - the project ships django-tasks-db
        return False
    backend = recompute_daily.get_backend()
    if type(backend).__module__.split(".")[0] != "django_tasks_db":
        return False
    return DBTaskResult.objects.filter(
        status="READY", task_path=recompute_daily.module_path, backend_name=backend.alias
    ).exists()


def daily_ensure(*, now: datetime | None = None, right_away: bool = False) -> bool:
    """Enqueue the next daily run (or, `right_away`, one now) unless one is waiting (or the
    backend cannot defer)."""
    if not recompute_daily.get_backend().supports_defer or _waiting():
        return False
    run_after = None if right_away else next_run_at(now or timezone.now())
    recompute_daily.using(run_after=run_after).enqueue()
    return True


def daily_ensure_after_migrate(*, using="default", **kwargs) -> None:
    """After `migrate`: start the chain, with a first run right away on a database whose
    groups were never computed (a new deployment, or the upgrade that added them)."""
    if using != "default":
        return
    from lifecycle.models import Thresholds

    daily_ensure(right_away=not Thresholds.objects.exists())


@task(queue_name="default")
def recompute_daily() -> str:
    """Recompute the thresholds and every customer's group, and take the day's snapshot."""
    # The successor first, so a worker killed now still leaves tomorrow's run.
    daily_ensure()
    result = services.lifecycle_recompute()
    return f"{result.clients} clients, {result.changed} changed group"
