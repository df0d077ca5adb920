"""Bulk tagging in the background (django.tasks; the db_worker command runs it)."""

from django.db import transaction
from django.tasks import task

from tags import services
from tags.models import TagJob


def tag_job_submit(**fields) -> TagJob:
    """Create a bulk tag job; run it now when it is small, else enqueue it once committed."""
    with transaction.atomic():
        job = services.tag_job_create(**fields)
        size = len(job.ids) if job.ids else None
    if size is None:
        audience = services.bulk_audience(tab=job.tab, ids=job.ids, query=job.query)
        size = audience.order_by()[: services.BULK_INLINE_LIMIT + 1].count()
    if size <= services.BULK_INLINE_LIMIT:
        return services.tag_job_run(job_id=job.pk)
    transaction.on_commit(lambda: run_tag_job.enqueue(job.pk))
    return job


@task()
def run_tag_job(job_id: int) -> None:
    services.tag_job_run(job_id=job_id)
