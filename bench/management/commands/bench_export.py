"""bench_export: the customer export of a large database, as CSV and as XLSX.

Each measurement runs in a child process of its own, so that its peak RSS is its own: the
CSV export through the view's code (services.export_stream_csv: COPY on PostgreSQL), the
same CSV through the Python writer (what SQLite uses), and the XLSX file through the task's
code (services.export_build_xlsx). It reports rows/s on the wall clock, the CPU time of the
process (and of the PostgreSQL backend, read from /proc, when the server is on this
machine) per row, and the peak RSS, and writes bench/results/export.json.
"""

import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.utils import timezone

from exports import services, writers
from exports.columns import FIELDS
from exports.selectors import export_customers_of

RESULTS = Path(settings.BASE_DIR) / "bench" / "results" / "export.json"
TARGET_ROWS_PER_S = 50_000
TARGET_RSS_MB = 100
KINDS = ("csv", "csv-python", "xlsx")


def _backend_cpu() -> float | None:
    """CPU seconds used so far by this connection's PostgreSQL backend (same machine only)."""
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


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Command(BaseCommand):
    help = (
        "Export every customer of both tabs (or --tab) as CSV (COPY on PostgreSQL, and the "
        "Python writer) and as XLSX: rows/s, CPU per row, peak RSS. Writes "
        f"{RESULTS.relative_to(settings.BASE_DIR)}. Creates export records: run it on a copy."
    )

    def add_arguments(self, parser):
        parser.add_argument("--tab", choices=("clients", "leads", "both"), default="both")
        parser.add_argument("--language", default="fr")
        parser.add_argument(
            "--only",
            choices=KINDS,
            help="Run one measurement in this process (used by the "
            "parent run; the peak RSS is then this measurement's).",
        )
        parser.add_argument("--skip", choices=KINDS, action="append", default=[])

    def handle(self, *args, **options):
        if options["only"]:
            result = self.measure(options["only"], options["tab"], options["language"])
            self.stdout.write(json.dumps(result))
            return
        results = []
        load_before = os.getloadavg()
        for kind in KINDS:
            if kind in options["skip"]:
                continue
            command = [
                sys.executable, "manage.py", "bench_export", "--only", kind,
                "--tab", options["tab"], "--language", options["language"],
            ]  # fmt: skip
            done = subprocess.run(
                command, cwd=settings.BASE_DIR, capture_output=True, text=True, check=False
            )
            if done.returncode:
                raise CommandError(f"{kind} failed:\n{done.stderr[-3000:]}")
            result = json.loads(done.stdout.strip().splitlines()[-1])
            results.append(result)
            self.report(result)
        load = os.getloadavg()
        summary = {
            "date": timezone.now().isoformat(timespec="seconds"),
            "database": connection.vendor,
            "machine": f"{platform.node()}, {os.cpu_count()} cores",
            "load_before": [round(x, 2) for x in load_before],
            "load_after": [round(x, 2) for x in load],
            "results": results,
        }
        RESULTS.write_text(json.dumps(summary, indent=2) + "\n")
        self.stdout.write(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; see {RESULTS}")

    def report(self, r: dict) -> None:
        line = (
            f"{r['kind']:10} {r['rows']:>9,} rows in {r['wall_s']:7.1f} s: "
            f"{r['rows_per_s']:>8,.0f} rows/s, {r['cpu_us_per_row']:5.1f} µs CPU/row"
        )
        if r.get("db_cpu_us_per_row") is not None:
            line += f" (+{r['db_cpu_us_per_row']:.1f} µs in PostgreSQL)"
        line += f", peak RSS {r['peak_rss_mb']:.0f} MB, {r['bytes'] / 1e6:,.0f} MB written"
        if r["kind"] == "csv":
            ok = r["rows_per_s"] >= TARGET_ROWS_PER_S and r["peak_rss_mb"] < TARGET_RSS_MB
            line += f" [target ≥{TARGET_ROWS_PER_S:,} rows/s, <{TARGET_RSS_MB} MB: "
            line += "met]" if ok else "NOT met]"
        self.stdout.write(line)

    def measure(self, kind: str, tab: str, language: str) -> dict:
        tabs = ("clients", "leads") if tab == "both" else (tab,)
        baseline = _peak_rss_mb()
        exports = [
            services.export_create(
                user=None, tab=t, scope="all", query="", sort="", ids=[],
                file_format="xlsx" if kind == "xlsx" else "csv", language=language,
            )
            for t in tabs
        ]  # fmt: skip
        db_before = _backend_cpu()
        cpu, wall = time.process_time(), time.perf_counter()
        rows = size = 0
        for export in exports:
            if kind == "csv":
                for chunk in services.export_stream_csv(export):
                    size += len(chunk)
                export.refresh_from_db()
                rows += export.rows
            elif kind == "csv-python":
                counted = [0]

                def count(n, counted=counted):
                    counted[0] = n

                size += len(writers.csv_head(language))
                customers = export_customers_of(export).values_list(*FIELDS)
                for chunk in writers.csv_chunks(
                    customers.iterator(chunk_size=services.CHUNK_SIZE),
                    language=language,
                    zone=timezone.get_default_timezone(),
                    counter=count,
                ):
                    size += len(chunk)
                rows += counted[0]
            else:
                built = services.export_build_xlsx(export_id=export.pk)
                if built is None or built.status != "done":
                    raise CommandError(f"XLSX export {export.pk} did not finish: {built}")
                rows += built.rows
                storage = services.export_storage()
                size += storage.size(built.file)
                storage.delete(built.file)
        wall = time.perf_counter() - wall
        cpu = time.process_time() - cpu
        db_after = _backend_cpu()
        db_cpu = None if db_before is None or db_after is None else db_after - db_before
        return {
            "kind": kind,
            "tab": tab,
            "language": language,
            "rows": rows,
            "bytes": size,
            "wall_s": round(wall, 2),
            "rows_per_s": round(rows / wall) if wall else 0,
            "cpu_s": round(cpu, 2),
            "cpu_us_per_row": round(cpu * 1e6 / rows, 2) if rows else 0,
            "db_cpu_us_per_row": round(db_cpu * 1e6 / rows, 2) if rows and db_cpu else None,
            "peak_rss_mb": round(_peak_rss_mb(), 1),
            "rss_before_mb": round(baseline, 1),
        }
