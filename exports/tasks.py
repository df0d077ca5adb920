"""Background work of exports (django.tasks; the db_worker command runs it).

The one module of the app that enqueues: an XLSX export is built by `build_xlsx_export`, and
each finished file schedules `delete_expired_exports` for when it expires
(`manage.py delete_expired_exports` does the same, for a cron or after a worker was down).
"""

from django.db import transaction
from django.tasks import task

from exports import services
from exports.models import Export, ExportStatus


def export_submit(**fields) -> Export:
    """Record an export (services.export_create); for XLSX, enqueue its build once committed."""
    with transaction.atomic():
        export = services.export_create(**fields)
        if export.status == ExportStatus.PENDING:
            transaction.on_commit(lambda: build_xlsx_export.enqueue(export.pk))
    return export


@task()
def build_xlsx_export(export_id: int) -> None:
    export = services.export_build_xlsx(export_id=export_id)
    if export is None or export.expires_at is None:
        return
    cleanup = delete_expired_exports
    if cleanup.get_backend().supports_defer:
        cleanup.using(run_after=export.expires_at).enqueue()


@task()
def delete_expired_exports() -> int:
    return services.export_delete_expired()
