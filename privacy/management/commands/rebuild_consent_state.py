from django.core.management.base import BaseCommand

from privacy.services import consent_state_rebuild


class Command(BaseCommand):
    help = (
        "Make each customer's email and SMS consent the newest record of the consent ledger "
        "for that channel, and report how many drifted."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--check", action="store_true", help="Only report drift; change nothing."
        )

    def handle(self, *args, check, **options):
        drifted = consent_state_rebuild(check=check)
        verb = "had drifted" if check else "had drifted and were fixed"
        self.stdout.write(f"{drifted} consent states {verb}.")
        if check and drifted:
            raise SystemExit(1)
