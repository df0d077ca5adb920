"""Play a believable storefront against the running back office through its HTTP API.

    .venv/bin/python manage.py simulate_storefront --rate 0.5 --url http://127.0.0.1:8000

Sign-ups (with the launch that brought them), launches from Google, Instagram, the
newsletter..., orders attributed to the launch before them, payments, shipments, a few
cancellations and refunds: leads become clients and totals change while you watch. Every call
goes over HTTP with an API key (STOREFRONT_API_KEY or --key; with DEBUG on and no key, one is
created for the run and revoked at the end). Stops after --duration seconds or on Ctrl-C.
"""

import os
import random
import signal
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from demo.storefront_simulator import ApiError, Client, Storefront


class Command(BaseCommand):
    help = "Play a storefront (sign-ups, launches, orders and their life) against the API."

    def add_arguments(self, parser):
        parser.add_argument("--rate", type=float, default=1.0, help="Actions per second (1).")
        parser.add_argument("--duration", type=float, default=0, help="Seconds; 0: until Ctrl-C.")
        parser.add_argument(
            "--url", default=os.environ.get("STOREFRONT_URL", "http://127.0.0.1:8000")
        )
        parser.add_argument("--key", default=os.environ.get("STOREFRONT_API_KEY", ""))
        parser.add_argument("--seed", type=int, default=None)
        parser.add_argument(
            "--wait", type=float, default=30, help="Seconds to wait for the server to answer."
        )

    def handle(self, *, rate, duration, url, key, seed, wait, verbosity, **options):
        if rate <= 0:
            raise CommandError("--rate must be positive.")
        created = None
        if not key:
            if not settings.DEBUG:
                raise CommandError("Give an API key (--key or STOREFRONT_API_KEY).")
            created, key = self._temporary_key()
        stopping = []
        previous = signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
        client = Client(url, key)
        out = self.stdout.write if verbosity >= 1 else None
        shop = Storefront(client, seed=seed, out=out)
        pacing = random.Random(seed)
        try:
            if not self._wait_for_server(shop, wait, stopping):
                return
            self.stdout.write(
                f"Storefront simulator: {rate:g} actions/s against {url} (Ctrl-C stops it)."
            )
            end = time.monotonic() + duration if duration else None
            next_at = time.monotonic()
            while not stopping and (end is None or time.monotonic() < end):
                next_at += pacing.expovariate(rate)
                pause = next_at - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                try:
                    shop.step()
                except ApiError as error:
                    self.stderr.write(f"refused: {error}")
                except OSError as error:
                    self.stderr.write(f"server unreachable ({error}); retrying")
                    time.sleep(2)
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
            client.close()
            if created is not None:
                self._revoke(created)
            summary = ", ".join(f"{n} {a}" for a, n in sorted(shop.counts.items()))
            self.stdout.write(f"Storefront simulator stopped: {summary or 'nothing done'}.")

    def _wait_for_server(self, shop, wait, stopping) -> bool:
        """Wait for the server to answer: False if told to stop first (SIGTERM)."""
        deadline = time.monotonic() + wait
        while not stopping:
            try:
                shop.load_customers()
                return True
            except OSError:
                if time.monotonic() > deadline:
                    raise CommandError(f"The server did not answer within {wait:g} s.") from None
                time.sleep(0.5)
        return False

    def _temporary_key(self):
        from storefront.models import Scope
        from storefront.services import api_key_create

        api_key, key = api_key_create(
            name="Storefront simulator (make run)", scopes=list(Scope.values), actor=None
        )
        return api_key, key

    def _revoke(self, api_key):
        from storefront.services import api_key_revoke

        api_key_revoke(api_key=api_key, actor=None)
