"""Lifecycle groups at scale: the daily recompute, and what the group costs an order's writes.

`bench_lifecycle` runs the recompute (lifecycle.services.lifecycle_recompute) on the configured
database and prints its wall time, this process's CPU and the database server process's CPU
(read from /proc: a server on this machine only), and how many customers changed group.
`--writes N` first places and pays N orders (3 lines each) through the order services for
sampled clients, one at a time, and prints the CPU per place + pay pair: run it before and
after a change of the statistics' statement to see its price. It writes real orders: run it
on a copy of the database.
"""

import os
import random
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from django.core.management.base import BaseCommand
from django.db import connection
from django.utils import timezone

from clients.models import Customer


def _server_cpu_seconds() -> float | None:
    """CPU time of this connection's PostgreSQL backend, from /proc (None elsewhere)."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Timer:
    """Wall, process CPU and server CPU around a block."""

    def __enter__(self):
        self.server = _server_cpu_seconds()
        self.cpu = time.process_time()
        self.wall = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu
        after = _server_cpu_seconds()
        self.server = None if self.server is None or after is None else after - self.server


class Command(BaseCommand):
    help = "Time the lifecycle recompute, and (--writes N) the order write path."

    def add_arguments(self, parser):
        parser.add_argument("--writes", type=int, default=0, help="orders to place and pay")
        parser.add_argument("--no-recompute", action="store_true")
        parser.add_argument(
            "--pages",
            type=int,
            default=0,
            metavar="N",
            help="time the lifecycle pages and the lists' group filter, N requests each",
        )
        parser.add_argument("--seed", type=int, default=14)
        parser.add_argument(
            "--days-ahead",
            type=float,
            default=0,
            help="recompute as if this many days had passed (a daily run: 1)",
        )

    def handle(self, *, writes, no_recompute, seed, days_ahead, pages, **options):
        load = os.getloadavg()
        self.stdout.write(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
        if writes:
            self._writes(writes, seed)
        if not no_recompute:
            self._recompute(timezone.now() + timedelta(days=days_ahead))
        if pages:
            self._pages(pages)

    def _pages(self, repeat: int) -> None:
        """The pages through Django (test client), as bench_lists measures the lists."""
        from django.conf import settings
        from django.test import Client
        from django.test.utils import override_settings
        from django.urls import reverse

        from bench.management.commands.bench_lists import Command as ListsBench
        from lifecycle.rules import Group

        lists = ListsBench(stdout=self.stdout, stderr=self.stderr)
        client = Client()
        client.force_login(lists._bench_user())
        clients_url = reverse("clients:client-list")
        cases = [
            ("dashboard", reverse("lifecycle:dashboard")),
            ("overdue, page 1", reverse("lifecycle:overdue")),
            ("overdue, page 20 (the last)", reverse("lifecycle:overdue") + "?page=20"),
            *(
                (f"clients, group {group}", f"{clients_url}?group={group}")
                for group in Group.values
                if group != Group.PROSPECTS
            ),
            (
                "clients, group at_risk, sort -total_spent",
                f"{clients_url}?group=at_risk&sort=-total_spent",
            ),
            ("leads, group prospects", reverse("clients:lead-list") + "?group=prospects"),
        ]
        with override_settings(ALLOWED_HOSTS=[*settings.ALLOWED_HOSTS, "testserver"]):
            for name, url in cases:
                result = lists._measure(client, name, url, repeat)
                self.stdout.write(
                    f"{name}: median {result['median_ms']} ms, p95 {result['p95_ms']} ms, "
                    f"CPU {result['cpu_median_ms']} ms, {result['queries']} queries "
                    f"(constant: {result['queries_constant']}), SQL {result['sql_median_ms']} ms"
                )

    def _writes(self, count: int, seed: int) -> None:
        from orders.services import LineInput, order_pay, order_place

        rng = random.Random(seed)
        clients = Customer.objects.filter(orders_count__gt=0)
        low = clients.order_by("pk").values_list("pk", flat=True).first() or 0
        top = clients.order_by("-pk").values_list("pk", flat=True).first() or 0
        ids = set()  # distinct clients, sampled
        for _ in range(count * 50 if top else 0):
            if len(ids) == count:
                break
            pk = rng.randint(low, top)
            if clients.filter(pk=pk).exists():
                ids.add(pk)
        customers = list(Customer.objects.filter(pk__in=ids))
        stamp = int(time.time())
        lines = [
            LineInput(product_name="Bench tee", sku="BT-1", quantity=1, unit_price=Decimal("19")),
            LineInput(product_name="Bench mug", sku="BM-1", quantity=2, unit_price=Decimal("9.5")),
            LineInput(product_name="Bench cap", sku="BC-1", quantity=1, unit_price=Decimal("12")),
        ]
        with Timer() as timer:
            for i, customer in enumerate(customers):
                order = order_place(
                    customer=customer,
                    number=f"BL{stamp}-{i}",
                    lines=lines,
                    source="bench",
                    medium="none",
                    placed_at=timezone.now(),
                )
                order_pay(order=order)
        n = len(customers)
        if not n:
            self.stdout.write("writes: no client to write for")
            return
        server = "n/a" if timer.server is None else f"{timer.server * 1000 / n:.2f} ms"
        self.stdout.write(
            f"writes: {n} place + pay pairs in {timer.wall:.1f} s ({n / timer.wall:.1f} pairs/s); "
            f"per pair: Python CPU {timer.cpu * 1000 / n:.2f} ms, PostgreSQL CPU {server}"
        )

    def _recompute(self, now) -> None:
        from lifecycle.services import lifecycle_recompute

        with Timer() as timer:
            result = lifecycle_recompute(now=now)
        server = "n/a" if timer.server is None else f"{timer.server:.1f} s"
        self.stdout.write(
            f"recompute: {result.clients:,} clients, {result.changed:,} changed group, "
            f"thresholds {result.thresholds}; wall {timer.wall:.1f} s, "
            f"Python CPU {timer.cpu:.2f} s, PostgreSQL CPU {server}"
        )
