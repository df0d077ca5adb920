"""The privacy app's background work (django.tasks): the daily run and data archives.

The daily run schedules its successor first (a run killed midway still has one), then
carries out the erasures whose grace period ended, the retention sweep when the shop turned
PRIVACY_RETENTION_AUTO on, prunes the access log, and runs each app's own retention (an
applied import's checked rows). Each step is safe to run twice.
`manage.py privacy_daily` runs it now; `--schedule` (also run after every `migrate`) makes sure
a run is waiting in the queue.
"""

from datetime import datetime, timedelta

from django.db import transaction
from django.tasks import task
from django.utils import timezone

from privacy import services

DAY = timedelta(days=1)


def _waiting(task_function) -> int:
    """How many runs of a task wait in django-tasks-db's queue (0 with another backend)."""
    backend = task_function.get_backend()
    if type(backend).__module__.split(".")[0] != "django_tasks_db":
        return 0
    from django_tasks_db.models import DBTaskResult

    return DBTaskResult.objects.filter(
        status="READY", task_path=task_function.module_path, backend_name=backend.alias
    ).count()


def daily_schedule(*, at=None) -> bool:
    """Enqueue the next daily run unless one is waiting; False if the backend cannot defer."""
    if not privacy_daily.get_backend().supports_defer:
        return False
    if _waiting(privacy_daily) == 0:
        privacy_daily.using(run_after=at or timezone.now() + DAY).enqueue()
    return True


def daily_run() -> dict:
    """The daily work, now; returns what it did."""
    return {
        "erased": services.erasures_carry_out(),
        "retention": services.retention_auto(),
        "access_log_pruned": services.access_log_prune(),
        "archives_expired": services.archives_expire(),
        "kept_data_expired": services.kept_data_expire(),
    }


@task()
def privacy_daily() -> dict:
    if privacy_daily.get_backend().supports_defer:
        privacy_daily.using(run_after=timezone.now() + DAY).enqueue()
    return daily_run()


@task()
def archive_build(archive_id: int) -> None:
    services.archive_build(archive_id=archive_id)


def archive_submit(**fields):
    """Request a data archive: built now for a small customer, else by the worker."""
    with transaction.atomic():
        archive, background = services.archive_request(**fields)
        if background:
            transaction.on_commit(lambda: archive_build.enqueue(archive.pk))
    if not background:
        services.archive_build(archive_id=archive.pk)
        archive.refresh_from_db()
    return archive


@task()
def retention_run(cutoff: str) -> int:
    """The retention sweep an Admin confirmed, for the cutoff they previewed (ISO 8601)."""
    return services.retention_sweep(cutoff=datetime.fromisoformat(cutoff))


def retention_submit(*, cutoff) -> None:
    """Enqueue a confirmed retention sweep once the request's transaction commits."""
    transaction.on_commit(lambda: retention_run.enqueue(cutoff.isoformat()))


@task()
def erasure_run(erasure_id: int) -> int:
    """Carry out an erasure at the end of its grace period (nothing if cancelled meanwhile)."""
    return services.erasure_carry_out(erasure_id=erasure_id)


def erasure_submit(**fields):
    """Plan an erasure (services.erasure_request) and enqueue it for its due time once
    committed; a backend that cannot defer leaves it to the daily run."""
    with transaction.atomic():
        erasure = services.erasure_request(**fields)
        transaction.on_commit(lambda: _enqueue_erasure(erasure))
    return erasure


def _enqueue_erasure(erasure) -> None:
    if erasure.due_at <= timezone.now():
        erasure_run.enqueue(erasure.pk)
    elif erasure_run.get_backend().supports_defer:
        erasure_run.using(run_after=erasure.due_at).enqueue(erasure.pk)
