"""What each deviation from stock Django saves, measured against stock Django on the configured
database (README: "Deviations from stock Django").

Each case runs the project's code and the stock Django code it replaces on the same data, many
times, and reports per call: median wall time, CPU time of this process (the database's work
is excluded from it, and included in the wall time), and SQL queries. Writes
bench/results/deviations.json.
"""

import copy
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Group, User
from django.contrib.sessions.backends import db as stock_sessions
from django.core.management.base import BaseCommand, CommandError
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Count, QuerySet
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from backoffice import sessions
from backoffice.auth import PermissionsInOneQueryBackend
from clients.filters import CustomerFilter
from clients.models import IS_CLIENT, Customer
from clients.paginators import COUNT_CAP, CappedCountPaginator
from clients.selectors import customer_list, tab_counts

RESULTS = Path(settings.BASE_DIR) / "bench" / "results" / "deviations.json"
BENCH_USER = "bench-deviations"
# The Clients tab's default order (clients/views/lists.py: "-last_order").
DEFAULT_ORDER = ("-last_order_at", "-id")


class Command(BaseCommand):
    help = (
        "Measure each deviation from stock Django (session read, user and permission loading, "
        "the lists' paginator SQL) against the stock Django code it replaces: median wall "
        f"and CPU time per call and queries. Writes {RESULTS.relative_to(settings.BASE_DIR)}."
    )

    def add_arguments(self, parser):
        parser.add_argument("--repeat", type=int, default=300, help="Calls per cheap case.")
        parser.add_argument(
            "--list-repeat", type=int, default=15, help="Calls per list case (pages, counts)."
        )
        parser.add_argument("--output", default=str(RESULTS))

    def handle(self, *, repeat, list_repeat, output, **options):
        if repeat < 1 or list_repeat < 1:
            raise CommandError("--repeat and --list-repeat must be at least 1.")
        if not Customer.objects.filter(IS_CLIENT).exists():
            raise CommandError("Load some customers first: manage.py seed_demo --customers N.")
        user = self._staff_user()
        pairs = [
            ("session read", *self._session_cases(user)),
            ("user load", *self._user_cases(user)),
            ("permissions of a Staff user", *self._permission_cases(user)),
            ("Clients tab count", *self._tab_count_cases()),
            ("filtered list count (source is google)", *self._filter_count_cases()),
            ("search page (most common last name)", *self._search_cases()),
            ("deep page (offset ~half of the Clients tab)", *self._deep_page_cases()),
        ]
        slow = {"deep page (offset ~half of the Clients tab)"}  # Django's takes seconds at 1M
        results = []
        for name, stock, ours, cheap in pairs:
            if stock() != ours():
                raise CommandError(f"{name}: the project's answer differs from stock Django's.")
            n = repeat if cheap else list_repeat
            if name in slow:
                n = max(1, list_repeat // 5)
            results.append(
                {
                    "case": name,
                    "stock": self._measure(stock, n),
                    "ours": self._measure(ours, n),
                }
            )
            self._line(results[-1])
        self._write(results, Path(output))

    # --- the cases: (stock, ours, cheap) ---------------------------------------------------

    def _session_cases(self, user):
        store = sessions.SessionStore()
        store["_auth_user_id"] = str(user.pk)
        store.set_expiry(timedelta(hours=1))
        store.save()
        key = store.session_key

        def stock():
            return stock_sessions.SessionStore(key).load()

        def ours():
            return sessions.SessionStore(key).load()

        return stock, ours, True

    def _user_cases(self, user):
        stock_backend, our_backend = ModelBackend(), PermissionsInOneQueryBackend()
        return (
            lambda: stock_backend.get_user(user.pk),
            lambda: our_backend.get_user(user.pk),
            True,
        )

    def _permission_cases(self, user):
        stock_backend, our_backend = ModelBackend(), PermissionsInOneQueryBackend()
        our_backend.get_all_permissions(copy.copy(user))  # the names, read once per process
        # A copy per call is a user as a new request loads it: no permission cache.
        return (
            lambda: stock_backend.get_all_permissions(copy.copy(user)),
            lambda: our_backend.get_all_permissions(copy.copy(user)),
            True,
        )

    def _tab_count_cases(self):
        return (
            lambda: Customer.objects.filter(IS_CLIENT).count(),
            lambda: tab_counts()["clients"],
            False,
        )

    def _filter_count_cases(self):
        matches = CustomerFilter({"source": "google"}, queryset=customer_list(tab="clients")).qs
        return (
            # What the page can say of it: the exact number up to the cap, "more than" past it.
            lambda: min(Paginator(matches.order_by(*DEFAULT_ORDER), 25).count, COUNT_CAP + 1),
            lambda: CappedCountPaginator(matches.order_by(*DEFAULT_ORDER), 25).count,
            False,
        )

    def _search_cases(self):
        common = (
            Customer.objects.filter(IS_CLIENT)
            .exclude(last_name="")
            .values("last_name")
            .annotate(n=Count("pk"))
            .order_by("-n", "last_name")
            .values_list("last_name", flat=True)
            .first()
        )
        matches = CustomerFilter({"q": common}, queryset=customer_list(tab="clients")).qs
        ordered = matches.order_by(*DEFAULT_ORDER)

        def stock():
            paginator = Paginator(ordered, 25)
            return paginator.count, list(paginator.page(1))

        def ours():
            paginator = CappedCountPaginator(ordered, 25, one_pass=True)
            page = paginator.page(1)
            return paginator.count, list(page)

        return stock, ours, False

    def _deep_page_cases(self):
        ordered = customer_list(tab="clients").order_by(*DEFAULT_ORDER)
        middle = tab_counts()["clients"] // 2 // 25 * 25
        page = slice(middle, middle + 25)
        return (
            # Django's slicing: OFFSET over the full rows.
            lambda: list(QuerySet.__getitem__(ordered, page)),
            # The page's ids from the sort's index first, then its rows.
            lambda: list(ordered[page]),
            False,
        )

    # --- measuring -------------------------------------------------------------------------

    def _measure(self, call: Callable, repeat: int) -> dict:
        call()  # warm up: caches, prepared statements
        walls, cpus, queries = [], [], []
        for _ in range(repeat):
            with CaptureQueriesContext(connection) as captured:
                cpu, wall = time.process_time(), time.perf_counter()
                call()
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            walls.append(wall * 1e6)
            cpus.append(cpu * 1e6)
            queries.append(len(captured.captured_queries))
        return {
            "calls": repeat,
            "median_us": round(statistics.median(walls), 1),
            "cpu_median_us": round(statistics.median(cpus), 1),
            "cpu_mean_us": round(statistics.fmean(cpus), 1),
            "queries": max(queries),
        }

    def _line(self, result):
        stock, ours = result["stock"], result["ours"]
        self.stdout.write(
            f"{result['case']}: stock {self._us(stock['median_us'])} "
            f"(CPU {self._us(stock['cpu_mean_us'])}, {stock['queries']} queries), "
            f"ours {self._us(ours['median_us'])} "
            f"(CPU {self._us(ours['cpu_mean_us'])}, {ours['queries']} queries)"
        )

    @staticmethod
    def _us(value: float) -> str:
        return f"{value / 1000:.2f} ms" if value >= 1000 else f"{value:.0f} µs"

    def _staff_user(self) -> User:
        user, created = User.objects.get_or_create(username=BENCH_USER)
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
            group = Group.objects.filter(name="Staff").first()
            if group:
                user.groups.add(group)
        return User.objects.get(pk=user.pk)

    def _write(self, results, output: Path) -> None:
        if connection.vendor == "postgresql":
            version = connection.pg_version
        else:
            version = connection.Database.sqlite_version
        data = {
            "date": timezone.now().isoformat(timespec="seconds"),
            "machine": {
                "platform": platform.platform(),
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "load_average": list(os.getloadavg()),
            },
            "database": {"vendor": connection.vendor, "version": str(version)},
            "clients": tab_counts()["clients"],
            "count_cap": COUNT_CAP,
            "cases": results,
        }
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        self.stdout.write(f"Results written to {output}.")
