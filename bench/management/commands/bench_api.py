"""Load test of the storefront API's write path: gunicorn with the production settings.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/backoffice_1m DEBUG=1 \\
        .venv/bin/python manage.py bench_api --duration 60

The runs (--only picks some; orders and import by default, paced with --rate):

- orders: wrk keeps connections busy, each one creating an order (3 lines, a random
  customer, an Idempotency-Key, no source: attributed to the customer's last launch) and then
  paying it, as two calls. Calls/s, p50/p99 latency, errors, and the CPU each call cost the
  gunicorn workers and the PostgreSQL backends serving them (read from /proc).
- import: NDJSON bulk import of --import-orders orders to ONE gunicorn worker, in requests of
  up to 10,000 lines: orders/s, CPU per order (the worker and its PostgreSQL backend), and the
  worker's memory before and after. Like a shop's migrated history: orders in date order,
  each for one of --import-customers customers (a third as many as orders by default: a few
  orders each, spread over the file), most of them paid or fulfilled. The bodies are built
  before the clock starts. With --import-key, each request carries an Idempotency-Key, and
  once the run is timed each request is sent again with its key: the time to answer a retry
  of a finished import (its stored answer, replayed), checked byte for byte.
- paced (with --rate R): R orders/s (create + pay) for --duration seconds from a paced
  client, for running bench_load's read mix at the same time (reads under writes).
- profile: --profile-calls order creations and payments in this process through Django's
  request handling (the test client, no HTTP server): CPU per call (this process, and the
  PostgreSQL backend serving it) and SQL statements per call, by kind of call. Independent
  of the machine's load, unlike the wall-clock runs.
- rewrites (PostgreSQL): what rewriting a customer's row costs PostgreSQL, the statement
  every finalized order ends in (the import's statistics UPDATE, orders/services.py
  _STATS_ADD_SQL, for --sample customers, one new order each), as the customers table is
  and with the lists' indexes dropped, alternately, each in a transaction rolled back (the
  DROP INDEX too: run it on a copy, it locks the table meanwhile). The figure behind the
  import's ceiling (README, "The NDJSON import's ceiling").

Each run ends with `rebuild_customer_stats --check` (drift must be 0). The orders created
stay in the database (they are real orders of real customers, numbered BENCH-...): run it on
a copy. Writes bench/results/api.json.
"""

import contextlib
import http.client
import json
import os
import random
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

from bench.management.commands.bench_load import Command as LoadCommand
from clients.models import Customer
from storefront.models import Scope
from storefront.services import api_key_create, api_key_revoke

TARGETS = {"calls_per_s": 250, "p99_ms": 100, "errors": 0, "import_orders_per_s": 5000}
# The servers' per-key rate limit during a run (calls per STOREFRONT_API_RATE_WINDOW, 10 s):
# the default 3,000 (300 calls/s) is what the idle machine reaches, and a run at it measures
# the limiter's 429s instead of the server. Every call is still counted (in Redis with
# REDIS_URL): the cost of the limiter stays in the figures.
RATE_LIMIT = 1_000_000
LINES = [
    {"product_name": "Merino scarf", "sku": "SCARF-MER", "quantity": 1, "unit_price": "39.90"},
    {"product_name": "Wool beanie", "sku": "BEANIE-WL", "quantity": 2, "unit_price": "24.50"},
    {"product_name": "Socks (3 pairs)", "sku": "SOCK-3P", "quantity": 1, "unit_price": "12.90"},
]

# Each wrk connection (one per thread) creates an order, then pays it: two calls in a row.
WRK_SCRIPT = r"""
local customers = {}
local key = os.getenv("BENCH_API_KEY")
local prefix = os.getenv("BENCH_PREFIX")
local lines = os.getenv("BENCH_LINES")
local threads = {}
local counter = 0
local pending = nil
local sent = nil
bad = 0
limited = 0

setup = function(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end

init = function(args)
  for line in io.lines(args[1]) do customers[#customers + 1] = line end
  -- `id` is the global setup() gave this thread.
  math.randomseed(os.time() * 100 + id)
end

local function headers(idem)
  return {["Authorization"] = "Bearer " .. key, ["Content-Type"] = "application/json",
          ["Idempotency-Key"] = idem, ["Host"] = "127.0.0.1"}
end

-- One connection per thread: request() runs after the previous response, so the payment
-- follows its order's creation (wrk also calls request() once at start without sending it).
request = function()
  if pending then
    local number = pending
    pending = nil
    sent = nil
    return wrk.format("POST", "/api/v1/orders/" .. number .. "/pay", headers(number .. "-pay"), "")
  end
  counter = counter + 1
  local number = prefix .. "-" .. id .. "-" .. counter
  sent = number
  local body = '{"number":"' .. number .. '","customer_id":' ..
    customers[math.random(#customers)] .. ',"lines":' .. lines .. '}'
  return wrk.format("POST", "/api/v1/orders", headers(number), body)
end

response = function(status, headers, body)
  if status == 201 and sent then pending = sent end
  if status ~= 200 and status ~= 201 then
    bad = bad + 1
    if status == 429 then limited = limited + 1 end
    if bad < 4 then io.stderr:write(status .. " " .. body .. "\n") end
  end
end

done = function(summary, latency, requests)
  local errors = 0
  local refused = 0
  for _, thread in ipairs(threads) do
    errors = errors + thread:get("bad")
    refused = refused + thread:get("limited")
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "non_2xx": %d, "rate_limited": %d, ' ..
    '"socket_errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d}, ' ..
    '"latency_us": {"p50": %d, "p90": %d, "p99": %d, "max": %d}}\n',
    summary.requests, summary.duration, errors, refused, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


def _cpu_seconds(pid: int, thread: int | None = None) -> float:
    """CPU time of a process (or of one of its threads), from /proc."""
    path = f"/proc/{pid}/task/{thread}/stat" if thread else f"/proc/{pid}/stat"
    try:
        fields = Path(path).read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _post_json(port: int, path: str, body: str, key: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request(
            "POST",
            path,
            body=body,
            headers={
                "Authorization": f"Bearer {key}",
                "Content-Type": "application/json",
                "Host": "127.0.0.1",
            },
        )
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


class CpuMeter:
    """CPU time used by the gunicorn workers and by this database's PostgreSQL backends
    between start() and stop().

    The processes are polled every POLL seconds from a thread: a backend that exits during
    the run still counts up to its last poll (each worker replaces its connection after
    CONN_MAX_AGE, 60 s, so a run of a minute or more loses the first backend otherwise: a
    before/after pair measured 0.1 ms of PostgreSQL CPU per call instead of 1.4), and one
    that starts during the run counts from zero.
    """

    POLL = 0.5

    def __init__(self, server_pid: int):
        self.server_pid = server_pid
        self.first: dict[str, dict[int, float]] = {"app": {}, "db": {}}
        self.last: dict[str, dict[int, float]] = {"app": {}, "db": {}}
        self._stop = threading.Event()
        self._thread = None

    def _backends(self) -> list[int]:
        if connection.vendor != "postgresql":
            return []
        with connection.cursor() as cursor:
            cursor.execute(
                # Client backends only: an autovacuum worker on this database is no call's.
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
            )
            return [row[0] for row in cursor.fetchall()]

    def _poll(self, *, initial: bool = False) -> None:
        for kind, pids in (("app", _children(self.server_pid)), ("db", self._backends())):
            for pid in pids:
                seconds = _cpu_seconds(pid)
                self.first[kind].setdefault(pid, seconds if initial else 0.0)
                self.last[kind][pid] = max(self.last[kind].get(pid, 0.0), seconds)

    def _run(self) -> None:
        try:
            self._poll(initial=True)
            self._started.set()
            while not self._stop.wait(self.POLL):
                self._poll()
            self._poll()
        finally:
            self._started.set()
            connection.close()  # this thread's own connection

    def start(self) -> "CpuMeter":
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._started.wait()
        return self

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        return {
            kind: sum(t - self.first[kind].get(pid, 0.0) for pid, t in self.last[kind].items())
            for kind in self.last
        }


class Command(BaseCommand):
    help = (
        "Load-test the storefront API's writes (order + payment through gunicorn, NDJSON "
        "import, or a paced rate for reads-under-writes); writes bench/results/api.json."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--only",
            action="append",
            choices=["orders", "import", "paced", "profile", "rewrites"],
        )
        parser.add_argument("--profile-calls", type=int, default=300)
        parser.add_argument("--duration", type=int, default=60)
        parser.add_argument("--warmup", type=int, default=5)
        parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
        parser.add_argument("--connections", type=int, default=8)
        parser.add_argument("--port", type=int, default=8810)
        parser.add_argument("--rate", type=float, default=0, help="paced: orders/s (0: skip).")
        parser.add_argument(
            "--rate-limit",
            type=int,
            default=RATE_LIMIT,
            help=f"The key's calls per window in the server run (STOREFRONT_API_RATE_LIMIT; "
            f"{RATE_LIMIT:,} by default, above what two cores can send: the run measures the "
            "server, the limiter still counting every call).",
        )
        parser.add_argument("--import-orders", type=int, default=20_000)
        parser.add_argument(
            "--import-customers",
            type=int,
            default=0,
            help="Customers the imported orders go to (default: a third of --import-orders).",
        )
        parser.add_argument(
            "--import-key",
            action="store_true",
            help="import: an Idempotency-Key per request, then each request retried with it.",
        )
        parser.add_argument("--sample", type=int, default=2000, help="Customers used (2000).")
        parser.add_argument(
            "--output", default=str(Path(settings.BASE_DIR) / "bench" / "results" / "api.json")
        )

    def handle(self, *args, **options):
        runs = options["only"] or (["orders", "import"] + (["paced"] if options["rate"] else []))
        if "orders" in runs and shutil.which("wrk") is None:
            raise CommandError("wrk is not installed: apt-get install wrk")
        if "paced" in runs and not options["rate"]:
            raise CommandError("--only paced needs --rate.")
        customers = list(
            Customer.objects.order_by("?").values_list("pk", flat=True)[: options["sample"]]
            if connection.vendor != "postgresql"
            else self._sample_customers(options["sample"])
        )
        if not customers:
            raise CommandError("No customers: seed the database first.")
        api_key, key = api_key_create(
            name=f"bench_api {secrets.token_hex(3)}",
            scopes=[Scope.ORDERS_WRITE, Scope.READ],
            actor=None,
        )
        self.prefix = f"BENCH{secrets.token_hex(3).upper()}"
        load = LoadCommand(stdout=self.stdout, stderr=self.stderr)
        workdir = Path(tempfile.mkdtemp(prefix="bench_api_"))
        result = {
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "database": {
                "vendor": connection.vendor,
                "name": str(settings.DATABASES["default"]["NAME"]),
                "customers": Customer.objects.count()
                if connection.vendor != "postgresql"
                else None,
            },
            "cpus": os.cpu_count(),
            "load_average_before": os.getloadavg(),
            "targets": TARGETS,
        }
        try:
            if "profile" in runs:
                result["profile"] = self.run_profile(options, key, customers)
            if "rewrites" in runs:
                result["rewrites"] = self.run_rewrites(customers)
            if set(runs) - {"profile", "rewrites"}:
                env = load.production_env(workdir)
                env["STOREFRONT_API_RATE_LIMIT"] = str(options["rate_limit"])
                result["rate_limit"] = {
                    "calls": options["rate_limit"],
                    "window_s": settings.STOREFRONT_API_RATE_WINDOW,
                    "counted_in": settings.STOREFRONT_API_RATE_LIMIT_CACHE or "database",
                }
                self.stdout.write(
                    f"Rate limit of the run's key: {options['rate_limit']:,} calls per "
                    f"{settings.STOREFRONT_API_RATE_WINDOW} s (STOREFRONT_API_RATE_LIMIT), "
                    f"counted in {result['rate_limit']['counted_in']}"
                )
                load.collectstatic(env)
            if "orders" in runs:
                result["orders"] = self._with_server(
                    load,
                    env,
                    workdir,
                    options,
                    options["workers"],
                    lambda server: self.run_orders(server, options, key, customers, workdir),
                )
            if "import" in runs:
                result["import"] = self._with_server(
                    load,
                    env,
                    workdir,
                    options,
                    1,
                    lambda server: self.run_import(server, options, key),
                )
            if "paced" in runs:
                result["paced"] = self._with_server(
                    load,
                    env,
                    workdir,
                    options,
                    options["workers"],
                    lambda server: self.run_paced(server, options, key, customers),
                )
        finally:
            api_key_revoke(api_key=api_key, actor=None)
            shutil.rmtree(workdir, ignore_errors=True)
        result["load_average_after"] = os.getloadavg()
        result["drift"] = self.check_drift()
        self.stdout.write(f"rebuild_customer_stats --check: {result['drift']}")
        output = Path(options["output"])
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(result, indent=2, default=str) + "\n")
        self.stdout.write(f"Written to {output}")

    # --- rewrites: a customer row's rewrite, with and without the lists' indexes ---------

    REWRITE_ROUNDS = 3

    def run_rewrites(self, customers: list[int]) -> dict:
        if connection.vendor != "postgresql":
            raise CommandError("--only rewrites measures PostgreSQL.")
        with connection.cursor() as cursor:
            # The lists' indexes: every index of the table that is neither unique nor the
            # foreign keys' (the primary key, the email and external_id stay).
            cursor.execute(
                "SELECT i.indexrelid::regclass::text FROM pg_index i "
                "WHERE i.indrelid = 'clients_customer'::regclass AND NOT i.indisunique "
                "AND i.indexrelid::regclass::text LIKE 'customer\\_%%'"
            )
            lists = [row[0] for row in cursor.fetchall()]
            cursor.execute(
                "SELECT count(*) FROM pg_index WHERE indrelid = 'clients_customer'::regclass"
            )
            every = cursor.fetchone()[0]
            cursor.execute("SELECT pg_backend_pid()")
            backend = cursor.fetchone()[0]
        # Disjoint samples, so that no round finds its rows' pages already rewritten.
        size = max(len(customers) // (2 * self.REWRITE_ROUNDS), 1)
        samples = [customers[i * size : (i + 1) * size] for i in range(2 * self.REWRITE_ROUNDS)]
        self.stdout.write(
            f"Rewrites: the import's statistics UPDATE on {size:,} customers per round, with "
            f"the table's {every} indexes and without its {len(lists)} list indexes, "
            f"alternately, {self.REWRITE_ROUNDS} rounds each (rolled back)…"
        )
        rounds = {"all indexes": [], "without the lists' indexes": []}
        for n, sample in enumerate(samples):
            kind = "all indexes" if n % 2 == 0 else "without the lists' indexes"
            rounds[kind].append(self._rewrite_round(sample, lists if n % 2 else [], backend))
        result = {"customers_per_round": size, "indexes": every, "list_indexes": len(lists)}
        for kind, measured in rounds.items():
            ms = sorted(r["cpu_ms_per_row"] for r in measured)
            result[kind] = {
                "cpu_ms_per_row": ms,
                "wall_ms_per_row": sorted(r["wall_ms_per_row"] for r in measured),
                "wal_kb_per_row": sorted(r["wal_kb_per_row"] for r in measured),
                "fpi_per_row": sorted(r["fpi_per_row"] for r in measured),
            }
            self.stdout.write(
                f"  {kind + ':':28} PostgreSQL CPU {', '.join(map(str, ms))} ms per row; WAL "
                f"{', '.join(map(str, result[kind]['wal_kb_per_row']))} KB per row"
            )
        return result

    def _rewrite_round(self, sample: list[int], drop: list[str], backend: int) -> dict:
        from orders.services import _STATS_ADD_SQL

        now = datetime.now(UTC)
        arrays = {
            "customers": sample,
            "counts": [1] * len(sample),
            "nets": [Decimal("10.00")] * len(sample),
            "placed": [now] * len(sample),
            "ids": [-(n + 1) for n in range(len(sample))],  # no order has these ids
            "sources": ["google"] * len(sample),
            "media": [""] * len(sample),
        }
        with transaction.atomic(), connection.cursor() as cursor:
            for name in drop:
                cursor.execute(f"DROP INDEX {connection.ops.quote_name(name)}")
            # The rows read first: the round measures their rewrite, not reading them in.
            cursor.execute("SELECT count(*) FROM clients_customer WHERE id = ANY(%s)", [sample])
            cursor.execute("SELECT pg_current_wal_insert_lsn()")
            lsn = cursor.fetchone()[0]
            cpu = _cpu_seconds(backend)
            started = time.perf_counter()
            cursor.execute("EXPLAIN (ANALYZE, WAL, FORMAT JSON) " + _STATS_ADD_SQL, arrays)
            wall = time.perf_counter() - started
            cpu = _cpu_seconds(backend) - cpu
            plan = cursor.fetchone()[0][0]["Plan"]
            cursor.execute("SELECT pg_current_wal_insert_lsn() - %s::pg_lsn", [lsn])
            wal = float(cursor.fetchone()[0])
            transaction.set_rollback(True)
        rows = max(len(sample), 1)
        return {
            "cpu_ms_per_row": round(cpu * 1000 / rows, 3),
            "wall_ms_per_row": round(wall * 1000 / rows, 3),
            "wal_kb_per_row": round(wal / 1024 / rows, 1),
            "fpi_per_row": round(plan.get("WAL FPI", 0) / rows, 2),
        }

    def _sample_customers(self, count: int) -> list[int]:
        """`count` customers (not erased) from pages picked at random over the table: about
        twice as many pages as needed are read (at least 1% of them)."""
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT reltuples FROM pg_class WHERE oid = 'clients_customer'::regclass"
            )
            rows = max(cursor.fetchone()[0], 1)
            percent = min(100.0, max(1.0, 200.0 * count / rows))
            cursor.execute(
                "SELECT id FROM clients_customer TABLESAMPLE SYSTEM (%s) "
                "WHERE erased_at IS NULL LIMIT %s",
                [percent, count],
            )
            ids = [row[0] for row in cursor.fetchall()]
        return ids or list(Customer.objects.values_list("pk", flat=True)[:count])

    def _with_server(self, load, env, workdir, options, workers, run):
        server = load.start_gunicorn(env, workdir, options["port"], workers)
        try:
            return run(server)
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()

    # --- orders: create + pay as fast as they go ----------------------------------------

    def run_orders(self, server, options, key, customers, workdir):
        ids = workdir / "customers.txt"
        ids.write_text("\n".join(map(str, customers)) + "\n")
        script = workdir / "orders.lua"
        script.write_text(WRK_SCRIPT)
        env = {
            **os.environ,
            "BENCH_API_KEY": key,
            "BENCH_LINES": json.dumps(LINES, separators=(",", ":")),
        }

        def wrk(duration, tag):
            completed = subprocess.run(
                [
                    "wrk",
                    f"--threads={options['connections']}",
                    f"--connections={options['connections']}",
                    f"--duration={duration}s",
                    "--timeout=10s",
                    "--latency",
                    f"--script={script}",
                    f"http://127.0.0.1:{options['port']}",
                    "--",
                    str(ids),
                ],
                env={**env, "BENCH_PREFIX": f"{self.prefix}{tag}"},
                capture_output=True,
                text=True,
                timeout=duration + 60,
            )
            line = next(
                (ln for ln in completed.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None
            )
            if completed.returncode != 0 or line is None:
                raise CommandError(f"wrk failed:\n{completed.stdout}\n{completed.stderr}")
            if completed.stderr.strip():
                self.stderr.write(completed.stderr.strip()[:1000])
            return json.loads(line.removeprefix("BENCH_JSON "))

        if options["warmup"]:
            self.stdout.write(f"Warming up for {options['warmup']} s…")
            wrk(options["warmup"], "W")
        self.stdout.write(
            f"Orders: create (3 lines) + pay, {options['duration']} s, "
            f"{options['connections']} connections, {options['workers']} gunicorn workers…"
        )
        meter, load_before = CpuMeter(server.pid).start(), os.getloadavg()
        raw = wrk(options["duration"], "R")
        cpu, load_after = meter.stop(), os.getloadavg()
        seconds = raw["duration_us"] / 1e6
        calls = raw["requests"]
        errors = raw["non_2xx"] + sum(raw["socket_errors"].values())
        latency = {k: round(v / 1000, 1) for k, v in raw["latency_us"].items()}
        summary = {
            "calls": calls,
            "calls_per_s": round(calls / seconds, 1),
            "orders_per_s": round(calls / seconds / 2, 1),
            "latency_ms": latency,
            "errors": errors,
            "error_detail": {
                "non_2xx": raw["non_2xx"],
                "of_which_429": raw["rate_limited"],
                **raw["socket_errors"],
            },
            "cpu_ms_per_call": {k: round(v * 1000 / max(calls, 1), 2) for k, v in cpu.items()},
            "load_average": [load_before, load_after],
        }
        summary["targets_met"] = (
            summary["calls_per_s"] >= TARGETS["calls_per_s"]
            and latency["p99"] < TARGETS["p99_ms"]
            and errors == 0
        )
        self.stdout.write(
            f"Calls/s:      {summary['calls_per_s']:.1f} ({summary['orders_per_s']:.1f} orders "
            f"created and paid per s; target ≥ {TARGETS['calls_per_s']} calls/s)\n"
            f"Latency:      p50 {latency['p50']} ms, p90 {latency['p90']} ms, p99 "
            f"{latency['p99']} ms (target < {TARGETS['p99_ms']}), max {latency['max']} ms\n"
            f"Errors:       {errors} {summary['error_detail']}\n"
            f"CPU per call: gunicorn {summary['cpu_ms_per_call']['app']} ms, PostgreSQL "
            f"{summary['cpu_ms_per_call'].get('db', 0)} ms\n"
            f"Load average: {load_before[0]:.2f} -> {load_after[0]:.2f} (1 min)"
        )
        return summary

    # --- import: NDJSON into one worker -------------------------------------------------

    def _ndjson(self, count: int, customers: list[int], tag: str, offset: int = 0) -> bytes:
        rng = random.Random(7 + offset)
        start = datetime.now(UTC) - timedelta(days=700) + timedelta(minutes=offset)
        statuses = ["fulfilled"] * 6 + ["paid"] * 2 + ["cancelled", "refunded", "pending"]
        out = []
        for n in range(count):
            status = rng.choice(statuses)
            order = {
                "type": "order",
                "number": f"{self.prefix}{tag}-{n}",
                "customer_id": rng.choice(customers),
                "placed_at": (start + timedelta(minutes=n)).isoformat(),
                "lines": LINES,
                "shipping": "4.90",
                "source": rng.choice(["google", "newsletter", "instagram", ""]),
                "medium": "",
                "status": status,
            }
            out.append(json.dumps(order, separators=(",", ":")))
        return ("\n".join(out) + "\n").encode()

    def run_import(self, server, options, key):
        per_request = 10_000
        total = options["import_orders"]
        wanted = options["import_customers"] or max(total // 3, 1)
        customers = (
            self._sample_customers(wanted)
            if connection.vendor == "postgresql"
            else list(Customer.objects.order_by("?").values_list("pk", flat=True)[:wanted])
        )
        worker = (_children(server.pid) or [server.pid])[0]
        self._post_ndjson(options["port"], key, self._ndjson(50, customers, "IW"))  # warm-up
        bodies = [
            self._ndjson(min(per_request, total - sent), customers, f"I{sent}", offset=sent)
            for sent in range(0, total, per_request)
        ]
        rss_before = _rss_kb(worker)
        meter = CpuMeter(server.pid).start()
        # The import reads and checks the lines ahead in a thread of its own. Before the
        # batches overlapped, the main thread applied them and waited for PostgreSQL: on two
        # idle cores the orders/s were bounded by the main thread's CPU plus PostgreSQL's (the
        # critical path). Now two threads apply them in turn on two connections: the bound
        # is all the CPU (worker and PostgreSQL) on two cores, whatever else the machine runs.
        main_before = _cpu_seconds(worker, worker)
        self.stdout.write(
            f"Import: {total:,} orders for {len(customers):,} customers as NDJSON, one "
            "gunicorn worker…"
        )
        load_before = os.getloadavg()
        started = time.perf_counter()
        counts = {}
        keys = [
            f"{self.prefix}import-{n}" if options["import_key"] else None
            for n in range(len(bodies))
        ]
        answers = []
        for body, idempotency_key in zip(bodies, keys, strict=True):
            summary, answer, _ = self._post_ndjson(options["port"], key, body, idempotency_key)
            answers.append(answer)
            for name, value in summary.items():
                counts[name] = counts.get(name, 0) + value
        elapsed = time.perf_counter() - started
        main = _cpu_seconds(worker, worker) - main_before
        cpu = meter.stop()
        retries = []
        for body, idempotency_key, answer in zip(bodies, keys, answers, strict=True):
            if idempotency_key is None:
                continue
            retried = time.perf_counter()
            _, again, replayed = self._post_ndjson(options["port"], key, body, idempotency_key)
            retries.append(round((time.perf_counter() - retried) * 1000, 1))
            if not replayed or again != answer:
                raise CommandError("A retry with the import's Idempotency-Key was not replayed")
        cpu["app_main_thread"] = main
        critical = (main + cpu.get("db", 0)) / total
        everything = (cpu.get("app", 0) + cpu.get("db", 0)) / total
        result = {
            "orders": total,
            "customers": len(customers),
            "seconds": round(elapsed, 2),
            "orders_per_s": round(total / elapsed, 1),
            "results": counts,
            "worker_rss_kb": [rss_before, _rss_kb(worker)],
            "cpu_ms_per_order": {k: round(v * 1000 / total, 3) for k, v in cpu.items()},
            "critical_path_orders_per_s": round(1 / critical) if critical else None,
            "two_cores_orders_per_s": round(2 / everything) if everything else None,
            "load_average": [load_before, os.getloadavg()],
            "idempotency_key": bool(options["import_key"]),
            "retry_ms": retries,
        }
        result["targets_met"] = (
            result["orders_per_s"] >= TARGETS["import_orders_per_s"] and counts.get("error", 0) == 0
        )
        if retries:
            self.stdout.write(
                f"Retries:      each request sent again with its Idempotency-Key: answered "
                f"from the stored answer (byte for byte) in {retries} ms"
            )
        self.stdout.write(
            f"Import:       {result['orders_per_s']:,.0f} orders/s (target ≥ "
            f"{TARGETS['import_orders_per_s']:,}), {counts}\n"
            f"CPU/order:    gunicorn {result['cpu_ms_per_order']['app']} ms, PostgreSQL "
            f"{result['cpu_ms_per_order'].get('db', 0)} ms; worker memory "
            f"{rss_before / 1024:.0f} -> {result['worker_rss_kb'][1] / 1024:.0f} MB\n"
            f"Main thread:  {result['cpu_ms_per_order']['app_main_thread']} ms per order: with "
            f"PostgreSQL's, {result['critical_path_orders_per_s']} orders/s on two free cores\n"
            f"All CPU:      {round(everything * 1000, 3)} ms per order (worker and PostgreSQL): "
            f"{result['two_cores_orders_per_s']} orders/s if it filled two free cores\n"
            f"Load average: {load_before[0]:.2f} -> {result['load_average'][1][0]:.2f} (1 min)"
        )
        return result

    def _post_ndjson(
        self, port: int, key: str, body: bytes, idempotency_key: str | None = None
    ) -> tuple[dict, bytes, bool]:
        """(the summary, the whole answer, whether it was replayed)."""
        headers = {
            "Authorization": f"Bearer {key}",
            "Content-Type": "application/x-ndjson",
            "Host": "127.0.0.1",
        }
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        try:
            conn.request("POST", "/api/v1/import", body=body, headers=headers)
            response = conn.getresponse()
            answer = response.read()
            lines = answer.decode().splitlines()
            replayed = response.getheader("Idempotent-Replayed") == "true"
        finally:
            conn.close()
        if response.status != 200 or not lines:
            raise CommandError(f"Import answered {response.status}: {lines[:3]}")
        last = json.loads(lines[-1])
        if "summary" not in last:
            raise CommandError(f"Import stopped: {last}")
        errors = [ln for ln in lines if '"result": "error"' in ln]
        if errors:
            self.stderr.write(f"{len(errors)} lines refused, e.g. {errors[0]}")
        return last["summary"], answer, replayed

    # --- paced: a steady rate, for reads under writes ------------------------------------

    def run_paced(self, server, options, key, customers):
        rate, duration = options["rate"], options["duration"]
        threads = max(4, int(rate // 10))
        latencies, errors, lock = [], [], threading.Lock()
        interval = threads / rate

        def client(index):
            conn = http.client.HTTPConnection("127.0.0.1", options["port"], timeout=30)
            rng = random.Random(index)
            next_at = start + index * interval / threads
            n = 0
            while True:
                next_at += interval
                now = time.monotonic()
                # A client that fell behind does not catch up after the end: the run lasts
                # --duration, and the rate reached is what it reports.
                if next_at > end or now > end:
                    break
                pause = next_at - now
                if pause > 0:
                    time.sleep(pause)
                n += 1
                number = f"{self.prefix}P{index}-{n}"
                calls = [
                    (
                        "/api/v1/orders",
                        json.dumps(
                            {"number": number, "customer_id": rng.choice(customers), "lines": LINES}
                        ),
                    ),
                    (f"/api/v1/orders/{number}/pay", ""),
                ]
                for path, body in calls:
                    t0 = time.perf_counter()
                    try:
                        conn.request(
                            "POST",
                            path,
                            body=body,
                            headers={
                                "Authorization": f"Bearer {key}",
                                "Content-Type": "application/json",
                                "Idempotency-Key": str(uuid.uuid4()),
                                "Host": "127.0.0.1",
                            },
                        )
                        response = conn.getresponse()
                        response.read()
                        ok = response.status in (200, 201)
                    except (OSError, http.client.HTTPException) as error:
                        ok = False
                        conn.close()
                        conn = http.client.HTTPConnection("127.0.0.1", options["port"], timeout=30)
                        response = error
                    with lock:
                        latencies.append(time.perf_counter() - t0)
                        if not ok:
                            errors.append(str(getattr(response, "status", response)))
            conn.close()

        # Warm-up: each worker imports and connects on its first calls.
        for n in range(4):
            number = f"{self.prefix}PW-{n}"
            body = json.dumps({"number": number, "customer_id": customers[0], "lines": LINES})
            for path, payload in (("/api/v1/orders", body), (f"/api/v1/orders/{number}/pay", "")):
                _post_json(options["port"], path, payload, key)
        self.stdout.write(f"Paced: {rate:g} orders/s (create + pay) for {duration} s…")
        start = time.monotonic()
        end = start + duration
        meter = CpuMeter(server.pid).start()
        workers = [threading.Thread(target=client, args=(i,)) for i in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        elapsed = time.monotonic() - start
        cpu = meter.stop()
        latencies.sort()
        calls = len(latencies)

        def pct(p):
            return round(latencies[min(calls - 1, int(calls * p))] * 1000, 1) if calls else None

        result = {
            "orders_per_s": round(calls / 2 / elapsed, 1),
            "calls": calls,
            "latency_ms": {"p50": pct(0.5), "p99": pct(0.99)},
            "errors": len(errors),
            "cpu_ms_per_call": {k: round(v * 1000 / max(calls, 1), 2) for k, v in cpu.items()},
        }
        self.stdout.write(
            f"Paced:        {result['orders_per_s']} orders/s, p50 {pct(0.5)} ms, p99 "
            f"{pct(0.99)} ms, {len(errors)} errors {errors[:5]}"
        )
        return result

    # --- profile: CPU and statements per call, in this process ---------------------------

    def run_profile(self, options, key, customers):
        from django.db import reset_queries
        from django.test import Client
        from django.test.utils import CaptureQueriesContext

        client = Client(HTTP_HOST="127.0.0.1", HTTP_AUTHORIZATION=f"Bearer {key}")
        rng = random.Random(11)
        backend = None
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                backend = cursor.fetchone()[0]

        def calls(tag, n):
            for i in range(n):
                number = f"{self.prefix}{tag}-{i}"
                body = json.dumps(
                    {"number": number, "customer_id": rng.choice(customers), "lines": LINES}
                )
                yield "create", "/api/v1/orders", body, number
                yield "pay", f"/api/v1/orders/{number}/pay", "", f"{number}-pay"

        def run(tag, n, queries=None):
            spent = {"create": [0.0, 0.0, 0], "pay": [0.0, 0.0, 0]}
            for kind, path, body, idem in calls(tag, n):
                app0 = time.process_time()
                db0 = _cpu_seconds(backend) if backend else 0.0
                response = client.post(
                    path, body, content_type="application/json", HTTP_IDEMPOTENCY_KEY=idem
                )
                app1 = time.process_time()
                db1 = _cpu_seconds(backend) if backend else 0.0
                if response.status_code not in (200, 201):
                    raise CommandError(f"{path}: {response.status_code} {response.content[:300]}")
                spent[kind][0] += app1 - app0
                spent[kind][1] += db1 - db0
                spent[kind][2] += 1
            return spent

        calls_n = options["profile_calls"]
        run("PW", 20)  # warm-up: imports, prepared statements
        spent = run("PT", calls_n // 2)
        statements = {}
        for kind, path, body, idem in calls("PQ", 1):
            with CaptureQueriesContext(connection) as captured:
                client.post(path, body, content_type="application/json", HTTP_IDEMPOTENCY_KEY=idem)
            statements[kind] = [q["sql"][:120] for q in captured.captured_queries]
        reset_queries()
        result = {
            kind: {
                "app_cpu_ms": round(app * 1000 / count, 2),
                "db_cpu_ms": round(db * 1000 / count, 2),
                "statements": len(statements[kind]),
            }
            for kind, (app, db, count) in spent.items()
        }
        result["statement_text"] = statements
        result["load_average"] = os.getloadavg()
        for kind in ("create", "pay"):
            r = result[kind]
            self.stdout.write(
                f"Profile {kind:6}: {r['app_cpu_ms']} ms CPU in Django + {r['db_cpu_ms']} ms in "
                f"PostgreSQL per call, {r['statements']} SQL statements"
            )
        if options["verbosity"] > 1:
            for kind, texts in statements.items():
                self.stdout.write(f"{kind}:\n  " + "\n  ".join(texts))
        return result

    def check_drift(self) -> str:
        out = StringIO()
        with contextlib.suppress(SystemExit):
            call_command("rebuild_customer_stats", "--check", stdout=out, stderr=StringIO())
        return out.getvalue().strip()
