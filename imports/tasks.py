"""Background work of imports (django.tasks; `manage.py db_worker` runs it).

The one module that enqueues. A task takes the job's id and calls a service; both services
are safe to run twice (the dry run starts again from the top, applying goes on from the
job's cursor), so a task that runs again after its worker died does no harm.
"""

import logging

from django.db import transaction
from django.tasks import task
from django.utils.translation import gettext as _

from imports import services
from imports.models import ImportJob

logger = logging.getLogger(__name__)


@task
def check_import(job_id: int) -> None:
    try:
        services.import_check(job_id=job_id)
    except Exception:
        logger.exception("Import %s: the dry run failed", job_id)
        services.import_fail(
            job_id=job_id, message=_("The check stopped on an unexpected error; start it again.")
        )


@task
def apply_import(job_id: int) -> None:
    try:
        services.import_apply(job_id=job_id)
    except Exception:
        logger.exception("Import %s: applying failed", job_id)
        services.import_fail(
            job_id=job_id,
            message=_(
                "Applying stopped on an unexpected error. Every row before the progress shown "
                "is applied, none after it: resume to apply the rest."
            ),
        )


def check_enqueue(job: ImportJob) -> None:
    """Run the dry run of a job once the current transaction commits."""
    transaction.on_commit(lambda: check_import.enqueue(job.pk))


def apply_enqueue(job: ImportJob) -> None:
    """Apply a job (from its cursor) once the current transaction commits."""
    transaction.on_commit(lambda: apply_import.enqueue(job.pk))
