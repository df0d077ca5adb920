"""Times a customer import of a generated Shopify customer export: the dry run, applying, and
applying the same file again (idempotency), with CPU time and the process's peak memory.

The file is a CSV, or with `--xlsx` an XLSX written as Excel writes one (every text in the
shared strings table). `--read-only` only reads the file's rows (cells parsed and checked, no
database work): the reader's own memory and CPU. `--profile PATH` writes each step's cProfile
statistics to PATH.<step>.

Creates real customers: run it on a copy of a database (`createdb -T`), never on a shop's.
"""

import cProfile
import csv
import json
import os
import random
import tempfile
import time
import zipfile
from pathlib import Path
from xml.sax.saxutils import escape

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
        parser.add_argument("--xlsx", action="store_true", help="An XLSX file, not a CSV.")
        parser.add_argument(
            "--read-only", action="store_true", help="Only read the file's rows (no database)."
        )
        parser.add_argument("--profile", default="", help="Write cProfile stats to PATH.<step>.")
        parser.add_argument("--output", default="")

    def handle(self, *args, rows, existing, seed, skip_second, xlsx, read_only, output, **options):
        # With DEBUG on Django keeps the last 9,000 queries' SQL: an import's statements carry
        # 1,000 rows each, which would be measured as the import's memory. The worker runs
        # with DEBUG off in production.
        settings.DEBUG = False
        self.profile = options["profile"]
        output = output or f"bench/results/import{'_xlsx' if xlsx else ''}.json"
        rng = random.Random(seed)
        run = f"{int(time.time())}"
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / f"customers_export.{'xlsx' if xlsx else 'csv'}"
            self._make(path, rows=rows, existing=existing, rng=rng, run=run, xlsx=xlsx)
            second = not skip_second
            results = self._run(path, rows=rows, xlsx=xlsx, read_only=read_only, second=second)
        return self._report(results, output)

    def _make(self, path: Path, *, rows, existing, rng, run, xlsx) -> None:
        made = time.perf_counter()
        table = self._rows(rows=rows, existing=existing, rng=rng, run=run)
        if xlsx:
            _write_xlsx(path, table)
        else:
            with path.open("w", newline="", encoding="utf-8") as out:
                csv.writer(out).writerows(table)
        size = path.stat().st_size
        settings.IMPORT_MAX_BYTES = max(settings.IMPORT_MAX_BYTES, size)
        self.stdout.write(
            f"{rows:,} rows, {size / 2**20:.1f} MB written in {time.perf_counter() - made:.1f} s"
        )

    def _upload(self, path: Path) -> ImportJob:
        with path.open("rb") as binary:
            return services.import_upload(
                upload=File(binary, name=path.name), kind="customers", actor=None
            )

    def _run(self, path: Path, *, rows, xlsx, read_only, second) -> dict:
        job = self._upload(path)
        results = {
            "rows": rows,
            "format": "xlsx" if xlsx else "csv",
            "file_mb": round(path.stat().st_size / 2**20, 1),
            "database": connection.vendor,
            "load_before": os.getloadavg(),
            "rss_start_mb": _mb(rss()),
        }
        if read_only:
            results["read"] = self._timed("read", lambda: self._read(job))
            job.file.delete(save=False)
            return results
        results["dry_run"] = self._timed("dry run", lambda: services.import_check(job_id=job.pk))
        job.refresh_from_db()
        results["dry_run"]["counts"] = job.counts
        results["apply"] = self._timed("apply", lambda: self._apply(job))
        job.refresh_from_db()
        results["apply"]["counts"] = job.applied_counts
        if second:
            again = self._upload(path)
            results["second_dry_run"] = self._timed(
                "second dry run", lambda: services.import_check(job_id=again.pk)
            )
            again.refresh_from_db()
            results["second_dry_run"]["counts"] = again.counts
            results["second_apply"] = self._timed("second apply", lambda: self._apply(again))
            again.refresh_from_db()
            results["second_apply"]["counts"] = again.applied_counts
        return results

    def _report(self, results: dict, output: str) -> None:
        results["load_after"] = os.getloadavg()
        self.stdout.write(json.dumps(results, indent=2))
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        Path(output).write_text(json.dumps(results, indent=2) + "\n")

    def _read(self, job: ImportJob) -> None:
        job.refresh_from_db()
        counts = {"read": 0, "refused": 0}
        for read in services._file_rows(job):
            counts["read"] += 1
            counts["refused"] += read.refused is not None or bool(read.refusals)
        self.stdout.write(f"read: {counts}")

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
        profile = cProfile.Profile() if self.profile else None
        wall, cpu = time.perf_counter(), time.process_time()
        with PeakRss() as memory:
            if profile:
                profile.runcall(work)
            else:
                work()
        if profile:
            profile.dump_stats(f"{self.profile}.{label.replace(' ', '_')}")
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

    def _rows(self, *, rows: int, existing: float, rng, run: str):
        """The header, then the rows of a Shopify customer export."""
        # Existing customers keep their shop id (an import would refuse another one).
        known = list(
            Customer.objects.order_by("pk").values_list("email", "external_id")[
                : int(rows * existing)
            ]
        )
        yield HEADERS
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
            yield [
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


_XML = '<?xml version="1.0" encoding="UTF-8"?>\n'
_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_RELS = "http://schemas.openxmlformats.org/package/2006/relationships"
_DOC = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml"
_XLSX_PARTS = {
    "[Content_Types].xml": (
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
        'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
        f'<Override PartName="/xl/workbook.xml" ContentType="{_TYPE}.sheet.main+xml"/>'
        '<Override PartName="/xl/worksheets/sheet1.xml" '
        f'ContentType="{_TYPE}.worksheet+xml"/>'
        '<Override PartName="/xl/sharedStrings.xml" '
        f'ContentType="{_TYPE}.sharedStrings+xml"/></Types>'
    ),
    "_rels/.rels": (
        f'<Relationships xmlns="{_RELS}"><Relationship Id="rId1" '
        f'Type="{_DOC}/officeDocument" Target="xl/workbook.xml"/></Relationships>'
    ),
    "xl/workbook.xml": (
        f'<workbook xmlns="{_MAIN}" xmlns:r="{_DOC}"><sheets>'
        '<sheet name="Customers" sheetId="1" r:id="rId1"/></sheets></workbook>'
    ),
    "xl/_rels/workbook.xml.rels": (
        f'<Relationships xmlns="{_RELS}">'
        f'<Relationship Id="rId1" Type="{_DOC}/worksheet" Target="worksheets/sheet1.xml"/>'
        f'<Relationship Id="rId2" Type="{_DOC}/sharedStrings" Target="sharedStrings.xml"/>'
        "</Relationships>"
    ),
}


def _column_letter(index: int) -> str:
    letters = ""
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def _write_xlsx(path: Path, table) -> None:
    """An XLSX file of `table` as Excel writes one: each text cell refers to the shared strings
    table (one entry per cell: a generator holding every distinct text would measure its own
    memory), numbers as numbers. Written part by part to disk, then zipped."""
    folder = path.parent
    strings = 0
    with (
        (folder / "sheet1.xml").open("w", encoding="utf-8") as sheet,
        (folder / "sharedStrings.xml").open("w", encoding="utf-8") as shared,
    ):
        sheet.write(f'{_XML}<worksheet xmlns="{_MAIN}"><sheetData>')
        shared.write(f'{_XML}<sst xmlns="{_MAIN}">')
        for number, row in enumerate(table, start=1):
            cells = []
            for column, value in enumerate(row, start=1):
                if value == "":
                    continue
                ref = f"{_column_letter(column)}{number}"
                if number > 1 and column in (16, 17):  # Total Spent, Total Orders
                    cells.append(f'<c r="{ref}"><v>{value}</v></c>')
                    continue
                cells.append(f'<c r="{ref}" t="s"><v>{strings}</v></c>')
                shared.write(f"<si><t>{escape(value)}</t></si>")
                strings += 1
            sheet.write(f'<row r="{number}">{"".join(cells)}</row>')
        sheet.write("</sheetData></worksheet>")
        shared.write("</sst>")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in _XLSX_PARTS.items():
            archive.writestr(name, _XML + text)
        archive.write(folder / "sheet1.xml", "xl/worksheets/sheet1.xml")
        archive.write(folder / "sharedStrings.xml", "xl/sharedStrings.xml")
    (folder / "sheet1.xml").unlink()
    (folder / "sharedStrings.xml").unlink()
