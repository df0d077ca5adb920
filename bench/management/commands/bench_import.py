"""Times a customer import of a generated Shopify customer export: the dry run, applying, and
applying the same file again (idempotency), with CPU time and the process's peak memory.

Creates real customers: run it on a copy of a database (`createdb -T`), never on a shop's.
"""

import csv
import json
import os
import random
import tempfile
import time
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.core.management.base import BaseCommand
from django.db import connection

from bench.memory import PeakRss, rss
from clients.models import Customer
from imports import services
from imports.models import ImportJob

HEADERS = [
    "Customer ID",
    "First Name",
    "Last Name",
    "Email",
    "Accepts Email Marketing",
    "Default Address Company",
    "Default Address Address1",
    "Default Address Address2",
    "Default Address City",
    "Default Address Province Code",
    "Default Address Country Code",
    "Default Address Zip",
    "Default Address Phone",
    "Phone",
    "Accepts SMS Marketing",
    "Total Spent",
    "Total Orders",
    "Note",
    "Tax Exempt",
    "Tags",
]
FIRST = ["Amélie", "Louis", "Chloé", "Hugo", "Léa", "Jules", "Inès", "Noah", "Manon", "Gabriel"]
LAST = ["Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand", "Leroy"]
CITIES = [("Paris", "75011"), ("Lyon", "69003"), ("Marseille", "13001"), ("Nantes", "44000")]


def _mb(value: int) -> float:
    return round(value / 2**20, 1)


class Command(BaseCommand):
    help = "Time the dry run and the apply of an N-row Shopify customer export (on a copy!)."

    def add_arguments(self, parser):
        parser.add_argument("--rows", type=int, default=100_000)
        parser.add_argument(
            "--existing",
            type=float,
            default=0.2,
            help="Share of rows naming customers already in the database (updates).",
        )
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--skip-second", action="store_true", help="Do not apply twice.")
        parser.add_argument("--output", default="bench/results/import.json")

    def handle(self, *args, rows, existing, seed, skip_second, output, **options):
        # With DEBUG on Django keeps the last 9,000 queries' SQL: an import's statements carry
        # 1,000 rows each, which would be measured as the import's memory. The worker runs
        # with DEBUG off in production.
        settings.DEBUG = False
        rng = random.Random(seed)
        run = f"{int(time.time())}"
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "customers_export.csv"
            made = time.perf_counter()
            self._write(path, rows=rows, existing=existing, rng=rng, run=run)
            size = path.stat().st_size
            self.stdout.write(
                f"{rows:,} rows, {size / 2**20:.1f} MB written in "
                f"{time.perf_counter() - made:.1f} s"
            )
            with path.open("rb") as binary:
                job = services.import_upload(
                    upload=File(binary, name=path.name), kind="customers", actor=None
                )
        results = {
            "rows": rows,
            "file_mb": round(size / 2**20, 1),
            "database": connection.vendor,
            "load_before": os.getloadavg(),
            "rss_start_mb": _mb(rss()),
        }
        results["dry_run"] = self._timed("dry run", lambda: services.import_check(job_id=job.pk))
        job.refresh_from_db()
        results["dry_run"]["counts"] = job.counts
        results["apply"] = self._timed("apply", lambda: self._apply(job))
        job.refresh_from_db()
        results["apply"]["counts"] = job.applied_counts
        if not skip_second:
            with job.file.open("rb") as binary:
                again = services.import_upload(
                    upload=File(binary, name="customers_export.csv"), kind="customers", actor=None
                )
            results["second_dry_run"] = self._timed(
                "second dry run", lambda: services.import_check(job_id=again.pk)
            )
            again.refresh_from_db()
            results["second_dry_run"]["counts"] = again.counts
            results["second_apply"] = self._timed("second apply", lambda: self._apply(again))
            again.refresh_from_db()
            results["second_apply"]["counts"] = again.applied_counts
        results["load_after"] = os.getloadavg()
        self.stdout.write(json.dumps(results, indent=2))
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        Path(output).write_text(json.dumps(results, indent=2) + "\n")

    def _apply(self, job: ImportJob) -> None:
        services.import_start_apply(job=job, actor=None)
        services.import_apply(job_id=job.pk)

    def _server_cpu(self) -> float | None:
        """CPU seconds of this connection's PostgreSQL backend (same machine: /proc)."""
        if connection.vendor != "postgresql":
            return None
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            pid = cursor.fetchone()[0]
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def _timed(self, label: str, work) -> dict:
        server = self._server_cpu()
        wall, cpu = time.perf_counter(), time.process_time()
        with PeakRss() as memory:
            work()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        after = self._server_cpu()
        server = round(after - server, 2) if server is not None and after is not None else None
        found = {
            "wall_s": round(wall, 2),
            "cpu_s": round(cpu, 2),
            "server_cpu_s": server,
            "peak_rss_mb": _mb(memory.peak),
            "rss_before_mb": _mb(memory.start),
        }
        self.stdout.write(
            f"{label}: {wall:.1f} s wall, {cpu:.1f} s CPU (+ {server} s PostgreSQL), "
            f"peak RSS {_mb(memory.peak)} MB (from {_mb(memory.start)} MB), "
            f"load {os.getloadavg()[0]:.1f}"
        )
        return found

    def _write(self, path: Path, *, rows: int, existing: float, rng, run: str) -> None:
        # Existing customers keep their shop id (an import would refuse another one).
        known = list(
            Customer.objects.order_by("pk").values_list("email", "external_id")[
                : int(rows * existing)
            ]
        )
        with path.open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(HEADERS)
            for i in range(rows):
                shop_id = f"'{8_000_000_000_000 + int(run) % 10**6 * 10**7 + i}"
                if i % 5 == 0 and known:
                    email, known_id = known.pop()
                    shop_id = f"'{known_id}" if known_id else shop_id
                elif i % 97 == 0:
                    email = f"broken-{i}-at-example.com"  # refused: invalid email
                else:
                    email = f"bench.{run}.{i}@example.com"
                city, zip_code = rng.choice(CITIES)
                mobile = f"+336{rng.randrange(10, 39)}{rng.randrange(10**5, 10**6)}"
                writer.writerow(
                    [
                        shop_id,
                        rng.choice(FIRST),
                        rng.choice(LAST),
                        email,
                        rng.choice(["yes", "no"]),
                        "",
                        f"{rng.randrange(1, 200)} rue de la République",
                        "",
                        city,
                        "",
                        "FR",
                        f"'{zip_code}",
                        "",
                        f"'{mobile}",
                        rng.choice(["yes", "no"]),
                        f"{rng.randrange(0, 50000) / 100:.2f}",
                        str(rng.randrange(0, 20)),
                        "",
                        "no",
                        "",
                    ]
                )
        settings.IMPORT_MAX_BYTES = max(settings.IMPORT_MAX_BYTES, path.stat().st_size)
