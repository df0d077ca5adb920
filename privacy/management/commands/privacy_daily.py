from django.core.management.base import BaseCommand

from privacy.tasks import daily_run, daily_schedule


class Command(BaseCommand):
    help = (
        "The privacy app's daily work, now: carry out the erasures whose grace period ended, "
        "the retention sweep if PRIVACY_RETENTION_AUTO is on, prune the access log, drop "
        "expired data archives and what apps keep for a while (an applied import's rows). "
        "With --schedule, only make sure the daily task is waiting in the task queue "
        "(migrate does it too)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--schedule", action="store_true", help="Only enqueue the daily task if none waits."
        )

    def handle(self, *args, schedule, **options):
        if schedule:
            if daily_schedule():
                self.stdout.write("The daily privacy task is scheduled.")
            else:
                self.stdout.write("The task backend cannot schedule: run this command daily.")
            return
        done = daily_run()
        self.stdout.write(", ".join(f"{name}: {count}" for name, count in done.items()))
