from django.core.management.base import BaseCommand

from lifecycle import tasks
from lifecycle.services import lifecycle_recompute


class Command(BaseCommand):
    help = (
        "Recompute the lifecycle thresholds from the shop's distribution, every customer's "
        "group and today's snapshot (what the daily task does), now."
    )

    def handle(self, **options):
        result = lifecycle_recompute()
        rules = result.thresholds
        self.stdout.write(
            f"{result.clients} clients; thresholds: recent {rules.recent_days} days, active "
            f"{rules.active_days} days, lost after {rules.lost_days} days, top "
            f"{rules.top_orders} orders or {rules.top_spent} spent; "
            f"{result.changed} customers changed group."
        )
        if tasks.daily_ensure():
            self.stdout.write("The daily recompute was not scheduled: it is now.")
