from django.core.management.base import BaseCommand

from exports.services import export_delete_expired


class Command(BaseCommand):
    help = (
        "Delete the XLSX export files past EXPORT_RETENTION_HOURS (the task worker also does "
        "it when each file expires); the export records stay, as the audit trail."
    )

    def handle(self, *args, **options):
        deleted = export_delete_expired()
        self.stdout.write(f"{deleted} expired export file(s) deleted.")
