from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from notifications.services import customers_push_opened_mismatches, customers_push_opened_refresh
from storefront.services import (
    customers_launch_source_mismatches,
    customers_launch_source_refresh,
)


class Command(BaseCommand):
    help = (
        "Make each customer's stored last launch source and 'opened a push' (what the "
        "segment filters read) agree with their launches and push deliveries, and report "
        "how many differed. With --check, only report, and fail if any differ."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--check", action="store_true", help="Only report differences; change nothing."
        )

    def handle(self, *args, check, **options):
        if check:
            launch = customers_launch_source_mismatches()
            push = customers_push_opened_mismatches()
        else:
            with transaction.atomic():
                launch = customers_launch_source_refresh()
                push = customers_push_opened_refresh()
        verb = "differ" if check else "differed and were fixed"
        self.stdout.write(f"Last launch source: {launch} customer(s) {verb}.")
        self.stdout.write(f"Opened a push: {push} customer(s) {verb}.")
        if check and (launch or push):
            raise CommandError("Stored launch sources or push clicks differ from their records.")
