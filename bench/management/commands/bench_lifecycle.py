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
        parser.add_argument("--seed", type=int, default=14)

    def handle(self, *, writes, no_recompute, seed, **options):
        load = os.getloadavg()
        self.stdout.write(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
        if writes:
            self._writes(writes, seed)
        if not no_recompute:
            self._recompute()

    def _writes(self, count: int, seed: int) -> None:
        from orders.services import LineInput, order_pay, order_place

        rng = random.Random(seed)
        top = Customer.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        ids = []
        while len(ids) < count and top:
            pk = rng.randint(1, top)
            if Customer.objects.filter(pk=pk, orders_count__gt=0).exists():
                ids.append(pk)
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
        server = "n/a" if timer.server is None else f"{timer.server * 1000 / n:.2f} ms"
        self.stdout.write(
            f"writes: {n} place + pay pairs in {timer.wall:.1f} s ({n / timer.wall:.1f} pairs/s); "
            f"per pair: Python CPU {timer.cpu * 1000 / n:.2f} ms, PostgreSQL CPU {server}"
        )

    def _recompute(self) -> None:
        from lifecycle.services import lifecycle_recompute

        with Timer() as timer:
            result = lifecycle_recompute()
        server = "n/a" if timer.server is None else f"{timer.server:.1f} s"
        self.stdout.write(
            f"recompute: {result.clients:,} clients, {result.changed:,} changed group, "
            f"thresholds {result.thresholds}; wall {timer.wall:.1f} s, "
            f"Python CPU {timer.cpu:.2f} s, PostgreSQL CPU {server}"
        )
