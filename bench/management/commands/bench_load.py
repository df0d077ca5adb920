"""Load test: the back office under gunicorn with the production settings, driven by wrk.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/backoffice_1m DEBUG=1 \\
        .venv/bin/python manage.py bench_load --duration 60

Starts gunicorn on 127.0.0.1 (DEBUG off, a generated SECRET_KEY, plain HTTP on loopback),
logs a temporary Staff user in through the real login form, and sends wrk's requests with
its session cookie over a mix of real URLs: the Clients and Leads lists (sorted, filtered,
paged), searches, client pages and order pages, built from ids read from the database.
Prints requests/s, latency percentiles and errors, and writes them to bench/results/load.json.
wrk must be installed (`apt-get install wrk`).
"""

import http.client
import json
import os
import random
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import quote, urlencode

from django.conf import settings
from django.contrib.auth.hashers import Argon2PasswordHasher
from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.db.models import Max, Min

from clients.models import Customer
from orders.models import Order

TARGETS = {"requests_per_s": 200, "p99_ms": 250, "errors": 0}
# Share of each kind of request in the mix.
MIX = {"list": 30, "search": 20, "client": 30, "order": 20}
SORTS = ["-last_order", "-total_spent", "total_spent", "-orders_count", "name", "-created_at"]
SOURCES = ["google", "facebook", "newsletter", "direct"]
COUNTRIES = ["FR", "DE", "BE", "ES", "IT", "GB"]

# wrk script: each thread sends GETs for paths picked at random from the file given as
# argument, with the session cookie; non-200 responses are counted as errors; at the end
# the summary is printed as one JSON line.
WRK_SCRIPT = r"""
local paths = {}
local cookie = os.getenv("BENCH_COOKIE")
local threads = {}
non200 = 0

setup = function(thread)
  table.insert(threads, thread)
end

init = function(args)
  for line in io.lines(args[1]) do paths[#paths + 1] = line end
  math.randomseed(os.time() + tonumber(tostring(paths):match("0x(%x+)") or "0", 16))
end

request = function()
  local path = paths[math.random(#paths)]
  return wrk.format("GET", path, {["Cookie"] = cookie, ["Host"] = "127.0.0.1"})
end

response = function(status, headers, body)
  if status ~= 200 then non200 = non200 + 1 end
end

done = function(summary, latency, requests)
  local bad = 0
  for _, thread in ipairs(threads) do bad = bad + thread:get("non200") end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "non_200": %d, ' ..
    '"socket_errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"min": %d, "mean": %.1f, "max": %d, "p50": %d, "p90": %d, "p99": %d, ' ..
    '"p999": %d}}\n',
    summary.requests, summary.duration, summary.bytes, bad,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.max, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9)))
end
"""


class Command(BaseCommand):
    help = (
        "Load-test the back office: gunicorn with the production settings on 127.0.0.1, driven "
        "by wrk over lists, searches, client pages and order pages; prints requests/s, "
        "p50/p99 latency and errors and writes bench/results/load.json."
    )

    def add_arguments(self, parser):
        parser.add_argument("--duration", type=int, default=60, help="Seconds of load (60).")
        parser.add_argument("--warmup", type=int, default=5, help="Seconds of warm-up (5).")
        parser.add_argument(
            "--workers",
            type=int,
            default=os.cpu_count() or 2,
            help=(
                "gunicorn workers (default: one per core; the work is CPU-bound and the "
                "database shares the cores: more workers measured slower)."
            ),
        )
        parser.add_argument(
            "--connections", type=int, default=8, help="Open connections kept busy by wrk (8)."
        )
        parser.add_argument("--threads", type=int, default=2, help="wrk threads (2).")
        parser.add_argument("--port", type=int, default=8013)
        parser.add_argument("--sample", type=int, default=500, help="Customers sampled (500).")
        parser.add_argument(
            "--output", default=str(Path(settings.BASE_DIR) / "bench" / "results" / "load.json")
        )
        parser.add_argument(
            "--only",
            action="append",
            choices=list(MIX),
            help="Only this kind of page (repeatable), to see which one is slow.",
        )
        parser.add_argument(
            "--strict", action="store_true", help="Exit with an error if a target is missed."
        )

    def handle(self, *args, **options):
        if shutil.which("wrk") is None:
            raise CommandError("wrk is not installed: apt-get install wrk")
        if Customer.objects.filter(orders_count__gt=0).count() == 0:
            raise CommandError("No clients to load-test with: seed the database first.")
        if connection.vendor == "sqlite":
            self.stderr.write("Warning: SQLite; the targets are meant for PostgreSQL.")
        self.rng = random.Random()
        kinds = options["only"] or list(MIX)
        paths, mix = self.build_paths(options["sample"], kinds)
        username, password = self.create_user()
        workdir = Path(tempfile.mkdtemp(prefix="bench_load_"))
        server = None
        try:
            env = self.production_env(workdir)
            self.collectstatic(env)
            server = self.start_gunicorn(env, workdir, options["port"], options["workers"])
            cookie = self.log_in(options["port"], username, password)
            self.check_pages(options["port"], cookie, mix)
            paths_file = workdir / "paths.txt"
            paths_file.write_text("\n".join(paths) + "\n")
            script = workdir / "mix.lua"
            script.write_text(WRK_SCRIPT)
            if options["warmup"]:
                self.stdout.write(f"Warming up for {options['warmup']} s…")
                self.run_wrk(options, options["warmup"], script, paths_file, cookie)
            self.stdout.write(
                f"Load: {options['duration']} s, {options['connections']} connections, "
                f"{options['workers']} gunicorn workers…"
            )
            # (bench_api imports this module: its CPU meter is imported here, not above)
            from bench.management.commands.bench_api import CpuMeter

            load_before = os.getloadavg()[0]
            meter = CpuMeter(server.pid).start()
            raw = self.run_wrk(options, options["duration"], script, paths_file, cookie)
            raw["cpu_s"], raw["load"] = meter.stop(), (load_before, os.getloadavg()[0])
        finally:
            if server is not None:
                server.terminate()
                try:
                    server.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    server.kill()
            User.objects.filter(username=username).delete()
            shutil.rmtree(workdir, ignore_errors=True)
        result = self.summarize(raw, options, mix)
        self.report(result)
        output = Path(options["output"])
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(result, indent=2) + "\n")
        self.stdout.write(f"Written to {output}")
        if options["strict"] and not result["targets_met"]:
            raise CommandError("A target was missed.")

    # --- The URLs -----------------------------------------------------------------------

    def build_paths(self, sample: int, kinds: list[str]) -> tuple[list[str], dict[str, list[str]]]:
        """A shuffled list of real URLs of these kinds, in the proportions of MIX."""
        # Ids between the lowest and the highest (a database's ids need not start at 1), and
        # the first customers when the draw finds none (a small, sparse database).
        bounds = Customer.objects.aggregate(low=Min("pk"), top=Max("pk"))
        wanted = {self.rng.randint(bounds["low"], bounds["top"]) for _ in range(sample * 3)}
        fields = ("pk", "last_name", "email", "orders_count")
        customers = list(
            Customer.objects.filter(pk__in=wanted).order_by("pk").values(*fields)[:sample]
        ) or list(Customer.objects.order_by("pk").values(*fields)[:sample])
        clients = [c for c in customers if c["orders_count"]]
        if not clients:
            clients = list(
                Customer.objects.filter(orders_count__gt=0).values(
                    "pk", "last_name", "email", "orders_count"
                )[:sample]
            )
        numbers = list(
            Order.objects.filter(customer_id__in=[c["pk"] for c in clients]).values_list(
                "number", flat=True
            )[: sample * 2]
        )
        if not numbers:
            raise CommandError("No orders found for the sampled clients.")
        lists = []
        for sort in SORTS:
            lists.append(f"/clients/?{urlencode({'sort': sort})}")
            lists.append(f"/clients/leads/?{urlencode({'sort': sort})}")
        for page in (2, 3, 10, 40):
            lists.append(f"/clients/?page={page}")
        for source in SOURCES:
            lists.append(f"/clients/?{urlencode({'source': source, 'sort': '-total_spent'})}")
        for country in COUNTRIES:
            lists.append(f"/clients/?{urlencode({'country': country})}")
        lists.append("/clients/?orders_min=3&spent_min=100")
        searches = []
        for customer in customers:
            if customer["last_name"]:
                searches.append(f"/clients/?{urlencode({'q': customer['last_name']})}")
            searches.append(f"/clients/?{urlencode({'q': customer['email'].split('@')[0]})}")
            searches.append(f"/clients/leads/?{urlencode({'q': str(customer['pk'])})}")
        mix = {
            "list": lists,
            "search": searches,
            "client": [f"/clients/{c['pk']}/" for c in customers],
            "order": [f"/orders/{number}/" for number in numbers],
        }
        mix = {kind: mix[kind] for kind in kinds}
        paths = []
        for kind in kinds:
            paths += [self.rng.choice(mix[kind]) for _ in range(MIX[kind] * 50)]
        self.rng.shuffle(paths)
        return paths, mix

    # --- The server ---------------------------------------------------------------------

    def create_user(self) -> tuple[str, str]:
        username = f"bench-load-{secrets.token_hex(4)}"
        password = secrets.token_urlsafe(24)
        # Hashed as the production settings the server runs with hash it, whatever this
        # process's settings say.
        hasher = Argon2PasswordHasher()
        user = User.objects.create(
            username=username, password=hasher.encode(password, hasher.salt())
        )
        user.groups.add(Group.objects.get(name="Staff"))
        return username, password

    def production_env(self, workdir: Path) -> dict:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("DJANGO_", "SECURE_", "DEBUG"))
        }
        env.update(
            DJANGO_SETTINGS_MODULE="backoffice.settings",
            DEBUG="0",
            # The production app set: without the demo and benchmark apps.
            DEV_APPS="0",
            SECRET_KEY=secrets.token_urlsafe(50),
            ALLOWED_HOSTS="127.0.0.1",
            # Plain HTTP on loopback: no redirect to https.
            SECURE_SSL_REDIRECT="0",
            STATIC_ROOT=str(workdir / "static"),
            LOG_LEVEL="WARNING",
        )
        env["DATABASE_URL"] = _database_url(connection.settings_dict)
        return env

    def collectstatic(self, env: dict) -> None:
        # The production storage serves hashed file names from a manifest: build it.
        subprocess.run(
            [sys.executable, "manage.py", "collectstatic", "--no-input", "-v", "0"],
            cwd=settings.BASE_DIR,
            env=env,
            check=True,
        )

    def start_gunicorn(self, env: dict, workdir: Path, port: int, workers: int):
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                raise CommandError(f"Port {port} is in use: choose another with --port.")
        log = (workdir / "gunicorn.log").open("w")
        self.server_log = workdir / "gunicorn.log"
        server = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("gunicorn")),
                "backoffice.wsgi:application",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(workers),
                "--timeout",
                "60",
            ],
            cwd=settings.BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        for _ in range(150):
            if server.poll() is not None:
                raise CommandError("gunicorn exited:\n" + self.server_log.read_text()[-3000:])
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    return server
            time.sleep(0.2)
        server.terminate()
        raise CommandError("gunicorn did not start in 30 s.")

    def log_in(self, port: int, username: str, password: str) -> str:
        """Log in through the login form, as a browser does; returns the Cookie header."""
        cookies = SimpleCookie()
        status, headers, body = _request(port, "GET", "/login/")
        for value in headers.get_all("Set-Cookie") or []:
            cookies.load(value)
        token = body.split('name="csrfmiddlewaretoken" value="', 1)[1].split('"', 1)[0]
        form = urlencode({"username": username, "password": password, "csrfmiddlewaretoken": token})
        status, headers, body = _request(
            port,
            "POST",
            "/login/",
            body=form,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Cookie": "; ".join(f"{k}={m.value}" for k, m in cookies.items()),
            },
        )
        if status != 302:
            raise CommandError(f"Log-in failed with status {status}:\n{body[:500]}")
        for value in headers.get_all("Set-Cookie") or []:
            cookies.load(value)
        if settings.SESSION_COOKIE_NAME not in cookies:
            raise CommandError("Log-in did not set a session cookie.")
        return "; ".join(f"{k}={m.value}" for k, m in cookies.items())

    def check_pages(self, port: int, cookie: str, mix: dict[str, list[str]]) -> None:
        """One request of each kind must be a 200 page, or the numbers would mean nothing."""
        for kind, paths in mix.items():
            path = paths[0]
            status, _, body = _request(port, "GET", path, headers={"Cookie": cookie})
            if status != 200:
                log = self.server_log.read_text()[-3000:]
                raise CommandError(f"{kind} page {path} answered {status}:\n{body[:300]}\n{log}")

    def run_wrk(self, options, duration: int, script: Path, paths: Path, cookie: str) -> dict:
        result = subprocess.run(
            [
                "wrk",
                f"--threads={options['threads']}",
                f"--connections={options['connections']}",
                f"--duration={duration}s",
                "--timeout=10s",
                "--latency",
                f"--script={script}",
                f"http://127.0.0.1:{options['port']}",
                "--",
                str(paths),
            ],
            env={**os.environ, "BENCH_COOKIE": cookie},
            capture_output=True,
            text=True,
            timeout=duration + 60,
        )
        line = next((ln for ln in result.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
        if result.returncode != 0 or line is None:
            raise CommandError(f"wrk failed:\n{result.stdout}\n{result.stderr}")
        return json.loads(line.removeprefix("BENCH_JSON "))

    # --- The results --------------------------------------------------------------------

    def summarize(self, raw: dict, options: dict, mix: dict) -> dict:
        seconds = raw["duration_us"] / 1e6
        errors = raw["non_200"] + sum(v for k, v in raw["socket_errors"].items() if k != "status")
        latency = {k: round(v / 1000, 1) for k, v in raw["latency_us"].items()}
        result = {
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "database": {
                "vendor": connection.vendor,
                "name": str(settings.DATABASES["default"]["NAME"]),
                "customers": Customer.objects.count(),
                "orders": Order.objects.count(),
            },
            "setup": {
                "duration_s": options["duration"],
                "gunicorn_workers": options["workers"],
                "wrk_threads": options["threads"],
                "connections": options["connections"],
                "cpus": os.cpu_count(),
                "mix_percent": {k: v for k, v in MIX.items() if k in mix},
                "distinct_urls": {kind: len(set(paths)) for kind, paths in mix.items()},
            },
            "requests": raw["requests"],
            "requests_per_s": round(raw["requests"] / seconds, 1),
            "latency_ms": latency,
            "errors": errors,
            "error_detail": {"non_200": raw["non_200"], **raw["socket_errors"]},
            # CPU per request of the gunicorn workers and of the database's backends: what
            # the code costs, where requests/s also depend on what else the machine runs.
            "cpu_ms_per_request": {
                kind: round(seconds_used * 1000 / max(raw["requests"], 1), 2)
                for kind, seconds_used in raw["cpu_s"].items()
            },
            "load_average": {"before": raw["load"][0], "after": raw["load"][1]},
            "targets": TARGETS,
        }
        result["targets_met"] = (
            result["requests_per_s"] >= TARGETS["requests_per_s"]
            and latency["p99"] < TARGETS["p99_ms"]
            and errors == TARGETS["errors"]
        )
        return result

    def report(self, result: dict) -> None:
        latency = result["latency_ms"]
        db = result["database"]
        self.stdout.write(
            f"\n{db['customers']:,} customers, {db['orders']:,} orders ({db['vendor']})\n"
            f"Requests:     {result['requests']:,} in {result['setup']['duration_s']} s\n"
            f"Requests/s:   {result['requests_per_s']:.1f}   (target ≥ "
            f"{TARGETS['requests_per_s']})\n"
            f"Latency p50:  {latency['p50']:.1f} ms\n"
            f"Latency p90:  {latency['p90']:.1f} ms\n"
            f"Latency p99:  {latency['p99']:.1f} ms   (target < {TARGETS['p99_ms']} ms)\n"
            f"Latency max:  {latency['max']:.1f} ms\n"
            f"Errors:       {result['errors']}   {result['error_detail']}\n"
            f"CPU/request:  gunicorn {result['cpu_ms_per_request']['app']} ms, PostgreSQL "
            f"{result['cpu_ms_per_request'].get('db', 0)} ms (load average "
            f"{result['load_average']['before']:.1f} -> {result['load_average']['after']:.1f})\n"
            f"Targets met:  {'yes' if result['targets_met'] else 'NO'}"
        )


def _database_url(db: dict) -> str:
    """The database this command is connected to, as a DATABASE_URL for the server."""
    if db["ENGINE"].endswith("sqlite3"):
        name = str(db["NAME"])
        if name == ":memory:" or "mode=memory" in name:
            raise CommandError("An in-memory SQLite database cannot be shared with gunicorn.")
        return f"sqlite:///{Path(name).resolve()}"
    if db["ENGINE"].endswith("postgresql"):
        auth = quote(db["USER"] or "", safe="")
        if db["PASSWORD"]:
            auth += ":" + quote(db["PASSWORD"], safe="")
        host = f"{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}"
        return f"postgres://{auth}@{host}/{quote(db['NAME'], safe='')}"
    raise CommandError(f"Unsupported database engine {db['ENGINE']}.")


def _request(port: int, method: str, path: str, body: str | None = None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers={"Host": "127.0.0.1", **(headers or {})})
        response = conn.getresponse()
        return response.status, response.headers, response.read().decode()
    finally:
        conn.close()
