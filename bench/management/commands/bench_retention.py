"""The retention sweep on the configured database (run it on a copy: it erases customers).

`--backdate N` first makes N leads (the lowest ids without any order) look inactive for four
years: their sign-up, launches, push subscriptions and clicks are moved back by four years.
Then it times the preview (the Admin page's counts) and the sweep itself, and reports wall
time, this process's CPU time and the PostgreSQL backend's CPU time (read from /proc, so it
survives a loaded machine), and checks the statistics (`rebuild_customer_stats --check`).
"""

import os
import time
from datetime import timedelta

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

from privacy.services import retention_cutoff, retention_preview, retention_sweep

FOUR_YEARS = timedelta(days=4 * 365)


def _backend_cpu() -> float:
    """CPU seconds the PostgreSQL backend serving this connection has used."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Timer:
    def __enter__(self):
        self.wall, self.cpu, self.db = time.perf_counter(), time.process_time(), _backend_cpu()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu
        self.db = _backend_cpu() - self.db

    def __str__(self):
        return (
            f"{self.wall:.2f} s wall, {self.cpu:.2f} s CPU here, {self.db:.2f} s CPU in PostgreSQL"
        )


class Command(BaseCommand):
    help = "Time the retention sweep (preview and erasure) on the configured database."

    def add_arguments(self, parser):
        parser.add_argument("--backdate", type=int, default=0, help="Leads made inactive first.")
        parser.add_argument("--preview-only", action="store_true")

    def handle(self, *args, backdate, preview_only, **options):
        if connection.vendor != "postgresql":
            raise CommandError("Run it on (a copy of) the PostgreSQL database.")
        if backdate:
            with Timer() as timer, transaction.atomic(), connection.cursor() as cursor:
                self._backdate(cursor, backdate)
            self.stdout.write(f"backdated {backdate} leads: {timer}")
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM clients_customer")
            total = cursor.fetchone()[0]
        cutoff = retention_cutoff()
        with Timer() as timer:
            preview = retention_preview(cutoff=cutoff)
        self.stdout.write(
            f"preview over {total} customers: {preview['leads']} leads, "
            f"{preview['clients']} clients: {timer}"
        )
        if preview_only:
            return
        with Timer() as timer:
            erased = retention_sweep(cutoff=cutoff)
        self.stdout.write(f"sweep: {erased} customers erased: {timer}")
        with Timer() as timer:
            call_command("rebuild_customer_stats", "--check", stdout=self.stdout)
        self.stdout.write(f"statistics check: {timer}")

    def _backdate(self, cursor, count: int) -> None:
        cursor.execute(
            "CREATE TEMPORARY TABLE bench_backdated ON COMMIT DROP AS "
            "SELECT id FROM clients_customer WHERE orders_count = 0 AND erased_at IS NULL "
            "AND NOT EXISTS (SELECT 1 FROM orders_order o "
            "WHERE o.customer_id = clients_customer.id) "
            "ORDER BY id LIMIT %s",
            [count],
        )
        shift = [FOUR_YEARS]
        cursor.execute(
            "UPDATE clients_customer SET created_at = created_at - %s "
            "WHERE id IN (SELECT id FROM bench_backdated)",
            shift,
        )
        cursor.execute(
            "UPDATE storefront_launch SET occurred_at = occurred_at - %s, "
            "received_at = received_at - %s WHERE customer_id IN (SELECT id FROM bench_backdated)",
            shift * 2,
        )
        cursor.execute(
            "UPDATE notifications_pushsubscription SET created_at = created_at - %s "
            "WHERE customer_id IN (SELECT id FROM bench_backdated)",
            shift,
        )
        cursor.execute(
            "UPDATE notifications_delivery SET clicked_at = clicked_at - %s "
            "WHERE clicked_at IS NOT NULL AND subscription_id IN (SELECT s.id FROM "
            "notifications_pushsubscription s JOIN bench_backdated b ON s.customer_id = b.id)",
            shift,
        )
        cursor.execute(
            "UPDATE clients_auditentry SET at = at - %s WHERE origin = 'customer' "
            "AND customer_id IN (SELECT id FROM bench_backdated)",
            shift,
        )
        cursor.execute("ANALYZE clients_customer")
