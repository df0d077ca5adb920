import errno
import signal
import socket
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.db.models import Value
from django.db.models.functions import Concat, StrIndex, Substr

from demo.push_service import HOST, DemoPushService, demo_endpoint_base
from notifications.models import PushSubscription

# Every demo endpoint, whatever port it was seeded with: http://127.0.0.1:<port>/push/demo-…
DEMO_ENDPOINT_RE = r"^http://127\.0\.0\.1:[0-9]{1,5}/push/demo-"
_MARKER = "/push/demo-"
# Share of the notifications with a link that the demo devices open (a campaign's click rate).
DEMO_CLICK_PERCENT = 20


def demo_endpoints_follow(port: int) -> int:
    """Point the demo subscriptions seeded for another port at this one; how many moved.

    The demo shop is seeded once, with the port of that day; a later `make run` with another
    PUSH_DEMO_SERVICE_PORT would otherwise send every demo push to the old port.
    """
    base = demo_endpoint_base(port)
    stale = PushSubscription.objects.filter(endpoint__regex=DEMO_ENDPOINT_RE).exclude(
        endpoint__startswith=base
    )
    # Keep what follows the marker (the subscription's id and key index), change the rest.
    suffix = Substr("endpoint", StrIndex("endpoint", Value(_MARKER)) + len(_MARKER))
    with transaction.atomic():
        return stale.update(endpoint=Concat(Value(base), suffix))


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def busy_message(port: int) -> str:
    return (
        f"Port {port} on {HOST} is already in use, and the demo push service needs it (demo "
        f"campaigns would go to whatever listens there). Set PUSH_DEMO_SERVICE_PORT to a free "
        f"port, e.g.: PUSH_DEMO_SERVICE_PORT={port + 1 if port < 65535 else 8765} make run"
    )


class Command(BaseCommand):
    help = (
        "Serve the demo push service on 127.0.0.1 (DEBUG only; `make run` starts it): the "
        "demo shop's subscriptions point at it (moved to this port at start if they were "
        "seeded for another), so demo campaigns are delivered, decrypted and logged here "
        "without any network. A fixed 3% of endpoints answer 410 Gone, and the demo devices "
        "open a share of the notifications that have a link (--clicks), so campaigns get clicks."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--port",
            type=int,
            default=settings.PUSH_DEMO_SERVICE_PORT,
            help="Port on 127.0.0.1 (default: PUSH_DEMO_SERVICE_PORT, %(default)s).",
        )
        parser.add_argument(
            "--clicks",
            type=int,
            default=DEMO_CLICK_PERCENT,
            help=(
                "Percent of the notifications with a link that the demo devices open, 2-20 s "
                "after delivery, through the click link (default %(default)s; 0: none)."
            ),
        )
        parser.add_argument(
            "--prepare",
            action="store_true",
            help=(
                "Only check that the port is free (exit 1 with a message naming "
                "PUSH_DEMO_SERVICE_PORT otherwise) and point the demo subscriptions at it."
            ),
        )

    def _report(self, line: str) -> None:
        # One line per push, visible at once even when the output is a file or a pipe.
        self.stdout.write(line)
        self.stdout.flush()

    def handle(self, *, port, clicks, prepare, **options):
        if not settings.DEBUG:
            raise CommandError("The demo push service only runs with DEBUG on.")
        if not 1 <= port <= 65535:
            raise CommandError(f"--port {port} is not a TCP port.")
        if not 0 <= clicks <= 100:
            raise CommandError(f"--clicks {clicks} is not a percentage (0 to 100).")
        if prepare:
            if not port_free(port):
                raise CommandError(busy_message(port))
            self._moved(port)
            return
        service = DemoPushService(port=port, report=self._report, clicks_per_10k=clicks * 100)
        try:
            service.start()
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise CommandError(busy_message(port)) from None
            raise CommandError(f"Cannot listen on 127.0.0.1:{port}: {exc}") from None
        self._moved(port)
        stop = threading.Event()
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
        self.stdout.write(f"Demo push service on {service.origin}/push/ (Ctrl-C stops it).")
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
            service.stop()

    def _moved(self, port: int) -> None:
        moved = demo_endpoints_follow(port)
        if moved:
            self.stdout.write(f"{moved} demo subscriptions now point at port {port}.")
