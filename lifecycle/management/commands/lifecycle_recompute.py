from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from lifecycle import tasks
from lifecycle.services import lifecycle_recompute, snapshot_from_history


class Command(BaseCommand):
    help = (
        "Recompute the lifecycle thresholds from the shop's distribution, every customer's "
        "group and today's snapshot (what the daily task does), now."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--history",
            type=int,
            metavar="DAYS",
            help=(
                "Also reconstruct the snapshot of DAYS days ago from the order history, if that "
                "day has none (after importing a shop's history: the dashboard compares with "
                "30 days ago)."
            ),
        )

    def handle(self, *, history, **options):
        if history is not None and not 1 <= history <= 3650:
            raise CommandError("--history takes a number of days from 1 to 3650.")
        result = lifecycle_recompute()
        rules = result.thresholds
        self.stdout.write(
            f"{result.clients} clients; thresholds: recent {rules.recent_days} days, active "
            f"{rules.active_days} days, lost after {rules.lost_days} days, top "
            f"{rules.top_orders} orders or {rules.top_spent} spent; "
            f"{result.changed} customers changed group."
        )
        if history is not None:
            day = timezone.localdate() - timedelta(days=history)
            counts = snapshot_from_history(day=day)
            if counts is None:
                self.stdout.write(f"{day} has a snapshot already: kept as it is.")
            else:
                self.stdout.write(
                    f"Snapshot of {day} reconstructed from the order history: "
                    f"{sum(counts.values())} customers then."
                )
        if tasks.daily_ensure():
            self.stdout.write("The daily recompute was not scheduled: it is now.")
