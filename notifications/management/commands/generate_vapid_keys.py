import os
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from notifications.webpush import vapid_keys_generate


class Command(BaseCommand):
    help = (
        "Create a VAPID key pair for web push and print it as environment variables "
        "(or write it to a file readable only by its owner, with --env-file)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--env-file", type=Path, help="Write the keys to this file.")
        parser.add_argument(
            "--force", action="store_true", help="Overwrite an existing --env-file."
        )

    def handle(self, *, env_file, force, **options):
        public, private = vapid_keys_generate()
        text = f"VAPID_PUBLIC_KEY={public}\nVAPID_PRIVATE_KEY={private}\n"
        if env_file is None:
            self.stdout.write(text, ending="")
            return
        if env_file.exists() and not force:
            raise CommandError(f"{env_file} exists; keep it or pass --force to replace it.")
        env_file.parent.mkdir(parents=True, exist_ok=True)
        # Created readable by the owner only: the private key signs as the shop.
        fd = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        self.stdout.write(f"VAPID keys written to {env_file} (public key {public}).")
