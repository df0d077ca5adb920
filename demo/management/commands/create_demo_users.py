import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from clients.roles import ROLES

LOGINS_FILE = Path(settings.BASE_DIR) / ".local" / "demo_logins.txt"


class Command(BaseCommand):
    help = (
        "Create one demo user per role (viewer, staff, admin) with a random password, "
        "once, and print their logins. Only for a DEBUG (demo) installation."
    )

    def handle(self, **options):
        if not settings.DEBUG:
            raise CommandError("Demo users are only created with DEBUG on; use createsuperuser.")
        logins = self._read_logins()
        with transaction.atomic():
            for role in ROLES:
                username = role.lower()
                user = User.objects.filter(username=username).first()
                if user is None or username not in logins:
                    password = secrets.token_urlsafe(9)
                    user = user or User(username=username)
                    user.set_password(password)
                    user.save()
                    logins[username] = password
                user.groups.set([Group.objects.get(name=role)])
        LOGINS_FILE.parent.mkdir(exist_ok=True)
        LOGINS_FILE.write_text("".join(f"{u} {p}\n" for u, p in logins.items()))
        self.stdout.write("\nDemo logins (also in .local/demo_logins.txt):")
        for role in ROLES:
            self.stdout.write(
                f"  {role:<7} username: {role.lower():<7} password: {logins[role.lower()]}"
            )
        self.stdout.write("")

    def _read_logins(self) -> dict[str, str]:
        if not LOGINS_FILE.exists():
            return {}
        pairs = (line.split(" ", 1) for line in LOGINS_FILE.read_text().splitlines() if " " in line)
        return {u: p for u, p in pairs}
