import os

from django.core.management.base import BaseCommand, CommandError

from bench.push_faults import SCENARIOS, Bench, check_database
from notifications.tasks import send_batch
from notifications.webpush import vapid_keys_generate


class Command(BaseCommand):
    help = (
        "Send a campaign of N subscriptions under each push fault (timeouts after the request "
        "was written, dropped connections, 429 storms, 500s, refused connections, killed "
        "workers, two workers) with real db_worker processes and the local push service; "
        "print received / duplicates / lost / unknown and the time to completion. PostgreSQL "
        "only, on a database no other worker serves; everything it writes is deleted."
    )

    def add_arguments(self, parser):
        parser.add_argument("--subscriptions", type=int, default=10000)
        parser.add_argument(
            "--scenario",
            action="append",
            choices=[s.name for s in SCENARIOS],
            help="Run only these scenarios (repeatable); default: all.",
        )
        parser.add_argument(
            "--timeout",
            type=float,
            default=300.0,
            help="Seconds a scenario may take before it is reported as not completed.",
        )

    def handle(self, *, subscriptions, scenario, timeout, **options):
        if subscriptions < 1:
            raise CommandError("--subscriptions must be at least 1.")
        problem = check_database()
        if problem:
            raise CommandError(problem)
        if "django_tasks_db" not in type(send_batch.get_backend()).__module__:
            raise CommandError("The tasks backend must be django_tasks_db's DatabaseBackend.")
        chosen = [s for s in SCENARIOS if not scenario or s.name in scenario]
        public, private = vapid_keys_generate()
        bench = Bench(
            n=subscriptions,
            timeout=timeout,
            vapid_private=private,
            vapid_public=public,
        )
        out = self.stdout.write
        try:
            self.stderr.write(f"Creating {subscriptions:,} subscriptions on the push service…")
            bench.setup()
            out(
                f"{subscriptions:,} subscriptions, push service {bench.service.origin}, "
                f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
            )
            out(
                "| Fault | Received | Duplicates | Lost | Unknown | Failed | Completed in "
                "| Requests | Rows |"
            )
            out("|---|---|---|---|---|---|---|---|---|")
            for item in chosen:
                self.stderr.write(f"Scenario {item.name}: {item.description}…")
                result = bench.scenario(item)
                done = (
                    f"{result.seconds:.1f} s"
                    if result.seconds is not None
                    else f"not within {timeout:.0f} s"
                )
                out(
                    f"| {item.name}: {item.description} | {result.received:,} | "
                    f"{result.duplicates:,} | {result.lost:,} | "
                    f"{result.rows.get('unknown', 0):,} | {result.rows.get('failed', 0):,} | "
                    f"{done} | {result.requests:,} | {result.rows} |"
                    + (f" {'; '.join(result.notes)}" if result.notes else "")
                )
            out(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        finally:
            self.stderr.write("Deleting what the bench wrote…")
            bench.teardown()
