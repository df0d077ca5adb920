import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from demo.push_service import DemoPushService


class Command(BaseCommand):
    help = (
        "Serve the demo push service on 127.0.0.1 (DEBUG only; `make run` starts it): the "
        "demo shop's subscriptions point at it, so demo campaigns are delivered, decrypted and "
        "logged here without any network. A fixed 3% of endpoints answer 410 Gone."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--port",
            type=int,
            default=settings.PUSH_DEMO_SERVICE_PORT,
            help="Port on 127.0.0.1 (default: PUSH_DEMO_SERVICE_PORT, %(default)s).",
        )

    def _report(self, line: str) -> None:
        # One line per push, visible at once even when the output is a file or a pipe.
        self.stdout.write(line)
        self.stdout.flush()

    def handle(self, *, port, **options):
        if not settings.DEBUG:
            raise CommandError("The demo push service only runs with DEBUG on.")
        if not 1 <= port <= 65535:
            raise CommandError(f"--port {port} is not a TCP port.")
        service = DemoPushService(port=port, report=self._report)
        try:
            service.start()
        except OSError as exc:
            raise CommandError(f"Cannot listen on 127.0.0.1:{port}: {exc}") from None
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
