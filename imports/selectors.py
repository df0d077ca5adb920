"""Reads of the imports pages."""

from django.db.models import QuerySet

from imports.models import ImportJob, ImportRow, RowAction

SAMPLE_UPDATES = 20
REFUSED_PAGE = 100


def import_job_list(limit: int = 20) -> QuerySet[ImportJob]:
    """The most recent imports, with who uploaded them."""
    return ImportJob.objects.select_related("created_by").order_by("-created_at", "-id")[:limit]


def import_job_get(pk: int) -> ImportJob:
    return ImportJob.objects.select_related("created_by", "applied_by").get(pk=pk)


def import_refused_rows(job: ImportJob) -> QuerySet[ImportRow]:
    """The refused rows of a job, in the file's order (line and reasons only)."""
    return (
        ImportRow.objects.filter(job=job, action=RowAction.REFUSED)
        .order_by("ordinal")
        .only("line", "reasons")
    )


def import_noted_rows(job: ImportJob) -> QuerySet[ImportRow]:
    """The rows of a job imported with a note (an address left out), in the file's order."""
    return (
        ImportRow.objects.filter(job=job)
        .exclude(action=RowAction.REFUSED)
        .exclude(reasons=[])
        .order_by("ordinal")
        .only("line", "key", "reasons")
    )


def import_sample_updates(job: ImportJob, limit: int = SAMPLE_UPDATES) -> list[ImportRow]:
    """The first updates of a job with their per-field changes (the dry run's diff)."""
    return list(
        ImportRow.objects.filter(job=job, action=RowAction.UPDATE)
        .order_by("ordinal")
        .only("line", "key", "changes")[:limit]
    )
