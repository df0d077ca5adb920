import json
import os
import platform
import random
import statistics
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.models import User
from django.core.cache import cache
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.db.models import Count, Max, Min
from django.test import Client
from django.test.utils import CaptureQueriesContext, override_settings
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from bench import segments_data
from clients.listing import SORTS
from clients.models import Customer
from clients.selectors import tab_counts
from clients.services import address_create, customer_create
from lifecycle.rules import Group
from lifecycle.services import customers_group_refresh
from orders.models import Order, OrderLine, OrderStatus
from orders.selectors import CustomerStats, customer_stats_compute
from orders.services import customer_products_add, finalized_where, order_set_status
from segments.models import Segment
from segments.selectors import segment_counts
from segments.services import segment_create
from tags.models import CustomerTag, Tag
from tags.services import tag_job_create, tag_job_run

BENCH_USER = "bench-superuser"
BIG_CUSTOMER_EMAIL = "bench.5000.orders@example.com"
BIG_CUSTOMER_ORDERS = 5000
RESULTS = Path(settings.BASE_DIR) / "bench" / "results" / "lists.json"

# Targets of issue 5 at a million customers on PostgreSQL.
TARGET_P95_MS = 50
TARGET_QUERIES = 8
TARGET_RATIO = 100
# Issue 14: bulk-tagging 100,000 customers in the background.
TARGET_BULK_TAG_S = 30
BENCH_SEGMENT = "bench: three filters"
# Each lifecycle group's slowest sort at 1M before clients migration 0021 (README).
GROUP_WORST_SORTS = {
    "champions": "total_spent",
    "loyal": "orders_count",
    "promising": "-orders_count",
    "new": "-orders_count",
    "needs_attention": "-orders_count",
    "at_risk": "total_spent",
    "about_to_lose": "-orders_count",
    "lost": "-id",
}

# clients migration 0008: autovacuum runs once this many customers' rows were rewritten.
AUTOVACUUM_THRESHOLD = 500


def _json_state(state: dict) -> dict:
    last = state.get("last_autovacuum")
    return {**state, "last_autovacuum": last.isoformat(timespec="seconds") if last else None}


class Command(BaseCommand):
    help = (
        "Measure the Clients and Leads tabs and the client page through Django's request "
        "handling against the configured database (every sort both ways, a deep page, each "
        "filter, searches, the Leads tab, a client with 5,000 orders), and the naive admin "
        "changelist that aggregates orders per request. Prints median/p95 server time and "
        f"SQL queries per case and writes {RESULTS.relative_to(settings.BASE_DIR)}."
    )

    def add_arguments(self, parser):
        parser.add_argument("--repeat", type=int, default=20, help="Requests per case.")
        parser.add_argument(
            "--naive-repeat", type=int, default=3, help="Requests for the naive reference."
        )
        parser.add_argument("--skip-naive", action="store_true")
        parser.add_argument(
            "--deep-page-only",
            action="store_true",
            help="Only the deep page (offset ~half of the Clients tab); implies --skip-naive.",
        )
        parser.add_argument(
            "--updates",
            type=int,
            default=0,
            help=(
                "After the cases, change N orders' status through the order services (each "
                "rewrites its customer's row), then measure the deep page again right away "
                "and, on PostgreSQL, once autovacuum has caught up. Changes the database."
            ),
        )
        parser.add_argument(
            "--autovacuum-wait",
            type=int,
            default=300,
            help="Seconds to wait for autovacuum after --updates (PostgreSQL; default 300).",
        )
        parser.add_argument(
            "--only", default="", help="Only the cases whose name contains this text."
        )
        parser.add_argument(
            "--skip-segments",
            action="store_true",
            help=(
                "Leave out the segment filters (tags, products, recent orders, launch source, "
                "push opened, a saved segment). They add their data once (bench/segments_data.py)."
            ),
        )
        parser.add_argument(
            "--bulk-tag",
            action="store_true",
            help=(
                "Also time a bulk tag job adding a tag to 100,000 clients (the function the "
                "background task runs); adds audit entries each run."
            ),
        )
        parser.add_argument(
            "--group-sorts",
            action="store_true",
            help=(
                "Each lifecycle group under every sort both ways (112 cases) rather than "
                "under its worst sort only."
            ),
        )
        parser.add_argument("--output", default=str(RESULTS))

    def handle(
        self,
        *,
        repeat,
        naive_repeat,
        skip_naive,
        deep_page_only,
        updates,
        autovacuum_wait,
        output,
        only,
        skip_segments=False,
        bulk_tag=False,
        group_sorts=False,
        **options,
    ):
        self.group_sorts = group_sorts
        if repeat < 1 or naive_repeat < 1 or updates < 0 or autovacuum_wait < 0:
            raise CommandError(
                "--repeat and --naive-repeat must be at least 1, --updates and "
                "--autovacuum-wait at least 0."
            )
        counts = tab_counts()
        if counts["clients"] < 2:
            raise CommandError("Load some customers first: manage.py seed_demo --customers N.")
        client = Client()
        client.force_login(self._bench_user())
        hosts = [*settings.ALLOWED_HOSTS, "testserver"]
        results = []
        skip_naive = skip_naive or deep_page_only
        deep_name, deep_url = self._deep_page_case(counts)
        with override_settings(ALLOWED_HOSTS=hosts):
            cases = [(deep_name, deep_url)] if deep_page_only else self._cases(counts)
            if not deep_page_only and not skip_segments:
                cases += self._segment_cases()
            for name, url in cases:
                if only not in name:
                    continue
                results.append(self._measure(client, name, url, repeat))
            if updates:
                results.extend(
                    self._after_updates(
                        client, deep_name, deep_url, repeat, updates, autovacuum_wait
                    )
                )
            # "segment count, side panel, not cached (N)": kept by an --only it contains.
            if not deep_page_only and not skip_segments and only in "segment count, side panel":
                results.extend(self._segment_count(repeat))
            if bulk_tag:
                results.append(self._bulk_tag())
            naive = None
            if not results:
                raise CommandError(f"No case matches --only {only!r}.")
            if not skip_naive and not only:
                naive = self._measure(
                    client,
                    "naive: admin changelist aggregating orders, by total spent",
                    reverse("admin:bench_customernaive_changelist"),
                    naive_repeat,
                    warmup=0,
                )
        self._report(results, naive, tab_counts(), Path(output))

    # --- cases -------------------------------------------------------------------------

    def _cases(self, counts):
        clients_url = reverse("clients:client-list")
        cases = []
        for key in sorted(SORTS):
            for sort in (key, f"-{key}"):
                cases.append((f"clients, sort {sort}", f"{clients_url}?sort={sort}"))
        cases.append(self._deep_page_case(counts))

        sample = self._sample_customer()
        today = timezone.localdate()
        month_ago = today - timedelta(days=30)
        year_ago = today - timedelta(days=365)
        filters = {
            "source": "source=google",
            "medium": "medium=cpc",
            "total spent range": "spent_min=100&spent_max=500",
            "orders range": "orders_min=3&orders_max=5",
            "last order date range": f"last_order_after={month_ago}&last_order_before={today}",
            "customer since range": (
                f"created_after={year_ago}&created_before={year_ago + timedelta(days=30)}"
            ),
            "push accepted": "push=true",
            "country": f"country={sample.country or 'FR'}",
        }
        for label, query in filters.items():
            cases.append((f"clients, filter {label}", f"{clients_url}?{query}"))
        local = sample.email.split("@")[0]
        searches = {
            "email fragment": local[1:9],
            "name fragment": (sample.last_name or local)[:5],
        }
        # The worst name search: the clients' most frequent last name (every match is read).
        common = (
            Customer.objects.filter(orders_count__gt=0)
            .exclude(last_name="")
            .values("last_name")
            .annotate(n=Count("pk"))
            .order_by("-n", "last_name")
            .values_list("last_name", flat=True)
            .first()
        )
        if common:
            searches["most common last name"] = common
        if sample.phone:
            digits = "".join(c for c in sample.phone if c.isdigit())
            searches["phone"] = digits[-8:]
        # Issue 17: the client ID as the list writes it, digits that are a client ID (ranked
        # first among every ID, phone and e-mail containing them), a name surname first.
        searches["client ID as written"] = f"#{sample.pk}"
        searches["client ID digits"] = str(sample.pk)
        if sample.first_name and sample.last_name:
            searches["surname first"] = f"{sample.last_name} {sample.first_name}"
        if common:
            searches["most common last name, surname first"] = f"{common} {sample.first_name}"
        leads_url = reverse("clients:lead-list")
        for label, text in searches.items():
            cases.append(
                (f"clients, search {label} “{text}”", f"{clients_url}?{urlencode({'q': text})}")
            )
        cases.append(("leads, page 1", leads_url))
        # A search on the Leads tab also counts its matches among the clients.
        for label in ("most common last name", "client ID as written"):
            if text := searches.get(label):
                cases.append(
                    (f"leads, search {label} “{text}”", f"{leads_url}?{urlencode({'q': text})}")
                )
        try:
            big = self._big_customer()
            cases.append(
                (
                    f"client page, {BIG_CUSTOMER_ORDERS:,} orders",
                    reverse("clients:client-detail", args=[big.pk]),
                )
            )
        except NoReverseMatch:
            self.stderr.write("No client page URL (clients:client-detail): case skipped.")
        return cases

    def _segment_cases(self) -> list[tuple[str, str]]:
        """Issue 14: each filter of segments/filters.py and a saved segment of three filters."""
        tags = segments_data.ensure(self.stderr)
        tag = [tags[f"bench-tag-{n}"] for n in range(1, 6)]
        clients_url, leads_url = reverse("clients:client-list"), reverse("clients:lead-list")
        product = OrderLine.objects.order_by("pk").values_list("sku", "product_name").first()
        sku, name = product or ("TP-1", "Test product")
        filters = {
            "tags any of 1": f"tags_any={tag[0]}",
            "tags any of 3": f"tags_any={tag[0]}&tags_any={tag[1]}&tags_any={tag[2]}",
            "tags all of 2": f"tags_all={tag[0]}&tags_all={tag[3]}",
            "tags none of 2": f"tags_none={tag[0]}&tags_none={tag[1]}",
            f"product SKU {sku}": urlencode({"product": sku}),
            f"product name “{name.split()[-1]}”": urlencode({"product": name.split()[-1]}),
            "2+ orders in the last 90 days": "recent_orders_min=2&recent_orders_days=90",
            "3+ orders in the last 365 days": "recent_orders_min=3&recent_orders_days=365",
            "1 to 2 orders in the last 30 days": (
                "recent_orders_min=1&recent_orders_max=2&recent_orders_days=30"
            ),
            "5+ orders in the last 30 days": "recent_orders_min=5&recent_orders_days=30",
            # Past the five dates stored before clients migration 0026 (issue 14's misses).
            "6+ orders in the last 30 days": "recent_orders_min=6&recent_orders_days=30",
            "8+ orders in the last 365 days": "recent_orders_min=8&recent_orders_days=365",
            "10+ orders in the last 90 days": "recent_orders_min=10&recent_orders_days=90",
            "at most 7 orders in the last 365 days": ("recent_orders_max=7&recent_orders_days=365"),
            "tag and 5+ orders in the last 30 days": (
                f"tags_any={tag[0]}&recent_orders_min=5&recent_orders_days=30"
            ),
            "no order in the last 30 days": "recent_orders_max=0&recent_orders_days=30",
            "last launch source google": "launch_source=google",
            "last launch source nobody has": "launch_source=bench-no-such-source",
            "never opened a push": "opened_push=never",
            "opened a push": "opened_push=yes",
        }
        cases = [(f"clients, filter {label}", f"{clients_url}?{q}") for label, q in filters.items()]
        cases.append(("leads, filter tags any of 1", f"{leads_url}?tags_any={tag[0]}"))
        cases.append(
            ("leads, filter last launch source google", f"{leads_url}?launch_source=google")
        )
        cases.append(("leads, filter opened a push", f"{leads_url}?opened_push=yes"))
        cases += self._group_cases(clients_url, every_sort=self.group_sorts)
        segment = self._bench_segment(tag[4])
        cases.append((f"clients, saved segment “{segment.name}”", segment.get_absolute_url()))
        return cases

    def _group_cases(self, clients_url: str, *, every_sort: bool) -> list[tuple[str, str]]:
        """Each lifecycle group of the Clients tab under its worst sort (GROUP_WORST_SORTS,
        measured at 1M before clients migration 0021), or under every sort both ways: a group
        is a range of recency, frequency and spending, so some sorts put its members at the
        far end of their index (Champions by total spent ascending, Lost by id descending)."""
        cases = []
        for group in Group.values:
            if group == Group.PROSPECTS:
                continue
            sorts = [GROUP_WORST_SORTS[group]]
            if every_sort:
                sorts = [sort for key in sorted(SORTS) for sort in (key, f"-{key}")]
            for sort in sorts:
                cases.append(
                    (
                        f"clients, group {group}, sort {sort}",
                        f"{clients_url}?{urlencode({'group': group, 'sort': sort})}",
                    )
                )
        return cases

    def _bench_segment(self, tag_id: int) -> Segment:
        query = f"opened_push=never&recent_orders_days=180&recent_orders_min=1&tags_any={tag_id}"
        segment = Segment.objects.filter(name=BENCH_SEGMENT, tab="clients").first()
        if segment is None:
            segment = segment_create(
                actor=self._bench_user(), name=BENCH_SEGMENT, tab="clients", query=query
            )
        return segment

    def _segment_count(self, repeat: int) -> list[dict]:
        """The side panel's count of the saved segment when not cached (it is kept 60 s)."""
        segment = Segment.objects.get(name=BENCH_SEGMENT, tab="clients")
        times, cpu_times, queries = [], [], []
        for _ in range(repeat + 2):
            cache.clear()
            with CaptureQueriesContext(connection) as captured:
                cpu_started, started = time.process_time(), time.perf_counter()
                count, _cap = segment_counts([segment])[segment.pk]
                times.append((time.perf_counter() - started) * 1000)
                cpu_times.append((time.process_time() - cpu_started) * 1000)
            queries.append(len(captured.captured_queries))
        times, cpu_times, queries = sorted(times[2:]), cpu_times[2:], queries[2:]
        result = {
            "case": f"segment count, side panel, not cached ({count:,})",
            "url": "",
            "requests": repeat,
            "median_ms": round(statistics.median(times), 2),
            "p95_ms": round(times[min(len(times) - 1, round(0.95 * len(times)) - 1)], 2),
            "min_ms": round(times[0], 2),
            "cpu_median_ms": round(statistics.median(cpu_times), 2),
            "sql_median_ms": round(statistics.median(times), 2),
            # The count, and the planner's plan of it when it counts through a tag
            # (segments.selectors.capped_count_sql).
            "queries": max(queries),
            "queries_constant": min(queries) == max(queries),
        }
        self.stderr.write(
            f"  {result['case']}: median {result['median_ms']} ms, p95 {result['p95_ms']} ms"
        )
        return [result]

    def _bulk_tag(self) -> dict:
        """Add a tag to the 100,000 clients of bench/segments_data.py through a bulk tag job,
        as the background task runs it (tags.services.tag_job_run)."""
        tags = segments_data.ensure(self.stderr)
        user = self._bench_user()
        target = Tag.objects.filter(name="bench-bulk").first()
        if target is not None:
            CustomerTag.objects.filter(tag=target).delete()
        query = f"tags_any={tags[segments_data.BULK_SOURCE_TAG]}"
        job = tag_job_create(
            actor=user, action="add", names=["bench-bulk"], tab="clients", ids=[], query=query
        )
        db_cpu_started = self._database_cpu()
        cpu_started, started = time.process_time(), time.perf_counter()
        # As the worker runs it in production: DEBUG off (with it on, Django keeps and formats
        # every statement, which for inserts of 5,000 rows cost more than the job's own work).
        with override_settings(DEBUG=False):
            job = tag_job_run(job_id=job.pk)
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        db_cpu = self._database_cpu() - db_cpu_started if db_cpu_started is not None else None
        self.stderr.write(
            f"  bulk tag job: {job.done:,} customers ({job.changed:,} changed) in {wall:.1f} s, "
            f"CPU {cpu:.1f} s here"
            + (f" and {db_cpu:.1f} s in PostgreSQL's backend" if db_cpu is not None else "")
        )
        return {
            "case": f"bulk tag job, {job.done:,} clients",
            "url": "",
            "requests": 1,
            "median_ms": round(wall * 1000, 1),
            "p95_ms": round(wall * 1000, 1),
            "min_ms": round(wall * 1000, 1),
            "cpu_median_ms": round(cpu * 1000, 1),
            "sql_median_ms": 0,
            "queries": 0,
            "queries_constant": True,
            "bulk": True,
            "database_cpu_s": None if db_cpu is None else round(db_cpu, 1),
            "customers": job.done,
            "changed": job.changed,
        }

    def _database_cpu(self) -> float | None:
        """CPU seconds used so far by this connection's PostgreSQL backend (from /proc, when
        the server runs on this machine), else None."""
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

    def _deep_page_case(self, counts) -> tuple[str, str]:
        """The Clients tab's page in the middle of the list (offset ~300,000 at 1M)."""
        middle = max(1, counts["clients"] // 2 // 25)
        return (
            f"clients, page {middle:,} (offset ~half)",
            f"{reverse('clients:client-list')}?page={middle}",
        )

    def _sample_customer(self) -> Customer:
        """A client from the middle of the list with a name and a phone, for the searches."""
        middle = Customer.objects.order_by("-pk").values_list("pk", flat=True).first() // 2
        return (
            Customer.objects.filter(pk__gte=middle, orders_count__gt=0)
            .exclude(last_name="")
            .exclude(phone="")
            .order_by("pk")
            .first()
        ) or Customer.objects.filter(orders_count__gt=0).order_by("pk").first()

    def _bench_user(self) -> User:
        user, created = User.objects.get_or_create(
            username=BENCH_USER, defaults={"is_superuser": True, "is_staff": True}
        )
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        return user

    def _big_customer(self) -> Customer:
        """A client with 5,000 orders (created once, statistics kept exact)."""
        customer = Customer.objects.filter(email__iexact=BIG_CUSTOMER_EMAIL).first()
        if customer and customer.orders.count() >= BIG_CUSTOMER_ORDERS:
            return customer
        with transaction.atomic():
            return self._big_customer_create(customer)

    def _big_customer_create(self, customer: Customer | None) -> Customer:
        if customer is None:
            customer = customer_create(
                email=BIG_CUSTOMER_EMAIL,
                first_name="Benchmark",
                last_name="Bigbuyer",
                created_at=timezone.now() - timedelta(days=4 * 365),
            )
            address_create(
                customer=customer,
                name="Benchmark Bigbuyer",
                line1="1 rue du Test",
                postal_code="75001",
                city="Paris",
                country="FR",
            )
        customer.refresh_from_db()
        snapshot = customer.default_billing_address.as_snapshot()
        start = timezone.now() - timedelta(days=3 * 365)
        step = timedelta(days=3 * 365) / BIG_CUSTOMER_ORDERS
        statuses = [OrderStatus.FULFILLED] * 8 + [OrderStatus.CANCELLED, OrderStatus.REFUNDED]
        orders = Order.objects.bulk_create(
            Order(
                number=f"BENCH-{customer.pk}-{n:05d}",
                customer=customer,
                placed_at=start + step * n,
                status=statuses[n % len(statuses)],
                currency=settings.SHOP_CURRENCY,
                subtotal="40.00",
                shipping="4.90",
                tax="8.00",
                total="52.90",
                refunded_amount="52.90" if statuses[n % 10] == OrderStatus.REFUNDED else "0",
                source="google",
                medium="organic",
                billing_address=snapshot,
                shipping_address=snapshot,
            )
            for n in range(BIG_CUSTOMER_ORDERS)
        )
        OrderLine.objects.bulk_create(
            OrderLine(
                order=order,
                product_name="Organic cotton T-shirt",
                sku="TS-ORG",
                quantity=2,
                unit_price="20.00",
                line_total="40.00",
            )
            for order in orders
        )
        # As the order services do: the statistics recomputed from the orders.
        stats = customer_stats_compute(customer_id=customer.pk)
        for field in CustomerStats.FIELDS:
            setattr(customer, field, getattr(stats, field))
        customer.save(update_fields=list(CustomerStats.FIELDS))
        # And what else they record: the products bought and the lifecycle group
        # (`rebuild_customer_stats --check` found this client's product missing).
        where, params = finalized_where()
        customer_products_add(
            where=f"o.customer_id = %s AND {where}", params=[customer.pk, *params]
        )
        customers_group_refresh([customer.pk])
        return customer

    # --- a burst of updates -------------------------------------------------------------

    def _after_updates(self, client, name, url, repeat, updates, autovacuum_wait) -> list[dict]:
        """The deep page after `updates` order changes: right away, then (PostgreSQL) once
        autovacuum has vacuumed the customers table again."""
        started = time.monotonic()
        self._order_changes(updates)
        burst_s = time.monotonic() - started
        burst_end = timezone.now()
        self.stderr.write(f"  {updates:,} order changes in {burst_s:.1f} s")
        right_away = self._measure(
            client, f"{name}, right after {updates:,} order changes", url, repeat
        )
        right_away["customers_table"] = _json_state(self._table_state())
        results = [right_away]
        if connection.vendor != "postgresql":
            return results
        with connection.cursor() as cursor:
            cursor.execute("SHOW autovacuum")
            autovacuum_on = cursor.fetchone()[0] == "on"
        if autovacuum_on:
            waited = self._wait_for_autovacuum(burst_end, autovacuum_wait)
            if waited is None:
                self.stderr.write(
                    f"  autovacuum did not vacuum the customers in {autovacuum_wait} s"
                )
                return results
            label, extra = "autovacuum", {"autovacuum_after_s": round(waited, 1)}
        elif connection.in_atomic_block:
            self.stderr.write("  autovacuum is off and VACUUM cannot run in a transaction")
            return results
        else:
            # The server's autovacuum is off (postgresql.conf): do the VACUUM it would have
            # done, so the number still says what the customers table's settings achieve.
            self.stderr.write("  autovacuum is off on this server: running VACUUM instead")
            table = connection.ops.quote_name(Customer._meta.db_table)
            started = time.monotonic()
            with connection.cursor() as cursor:
                cursor.execute(f"VACUUM {table}")
            label = "VACUUM (autovacuum is off on this server)"
            extra = {"vacuum_s": round(time.monotonic() - started, 1)}
        later = self._measure(
            client, f"{name}, after {updates:,} order changes and {label}", url, repeat
        )
        later.update(extra)
        later["customers_table"] = _json_state(self._table_state())
        results.append(later)
        return results

    def _order_changes(self, count: int) -> None:
        """Change `count` random orders' status (pending -> paid, paid -> fulfilled) through
        the order services, each in its own transaction, as the shop's traffic would: each
        rewrites its customer's row (the stored statistics)."""
        moves = {OrderStatus.PENDING: OrderStatus.PAID, OrderStatus.PAID: OrderStatus.FULFILLED}
        bounds = Order.objects.aggregate(low=Min("pk"), high=Max("pk"))
        # A new draw each run: a fixed seed would pick the orders an earlier run moved on.
        rng = random.Random()
        done = misses = 0
        while done < count:
            ids = [rng.randint(bounds["low"], bounds["high"]) for _ in range(1000)]
            found = Order.objects.filter(pk__in=ids, status__in=list(moves)).only(
                "pk", "customer_id", "status"
            )
            misses = 0 if found else misses + 1
            if misses > 200:
                raise CommandError("No pending or paid orders left to change.")
            for order in found[: count - done]:
                order_set_status(order=order, status=moves[order.status])
                done += 1

    def _table_state(self) -> dict:
        """The customers table's dead rows and last autovacuum (PostgreSQL)."""
        if connection.vendor != "postgresql":
            return {}
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT n_dead_tup, last_autovacuum, autovacuum_count "
                "FROM pg_stat_user_tables WHERE relid = %s::regclass",
                [connection.ops.quote_name(Customer._meta.db_table)],
            )
            dead, last, runs = cursor.fetchone()
        return {"dead_rows": dead, "last_autovacuum": last, "autovacuum_runs": runs}

    def _wait_for_autovacuum(self, since, timeout) -> float | None:
        """Seconds until autovacuum has vacuumed the customers table after `since` and left
        fewer dead rows than its threshold (clients migration 0008); None after `timeout`."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            state = self._table_state()
            last = state["last_autovacuum"]
            if last and last > since and state["dead_rows"] < AUTOVACUUM_THRESHOLD:
                return time.monotonic() - started
            time.sleep(2)
        return None

    # --- measuring -----------------------------------------------------------------------

    def _measure(self, client, name, url, repeat, warmup=2):
        for _ in range(warmup):
            client.get(url, secure=True)
        times, cpu_times, queries, sql_times = [], [], [], []
        for _ in range(repeat):
            with CaptureQueriesContext(connection) as captured:
                cpu_started = time.process_time()
                started = time.perf_counter()
                response = client.get(url, secure=True)
                elapsed = (time.perf_counter() - started) * 1000
                cpu = (time.process_time() - cpu_started) * 1000
            if response.status_code != 200:
                raise CommandError(f"{url} answered {response.status_code}.")
            times.append(elapsed)
            cpu_times.append(cpu)
            queries.append(len(captured.captured_queries))
            sql_times.append(sum(float(q["time"]) for q in captured.captured_queries) * 1000)
        times.sort()
        result = {
            "case": name,
            "url": url,
            "requests": repeat,
            "median_ms": round(statistics.median(times), 2),
            "p95_ms": round(times[min(len(times) - 1, round(0.95 * len(times)) - 1)], 2),
            "min_ms": round(times[0], 2),
            # Django's own CPU (this process; the database's work is not in it).
            "cpu_median_ms": round(statistics.median(cpu_times), 2),
            # The database's share of the median: the rest is Python (view, templates).
            "sql_median_ms": round(statistics.median(sql_times), 2),
            "queries": max(queries),
            "queries_constant": min(queries) == max(queries),
        }
        if "offset" in name:
            result.update(self._explain_deep_page(captured.captured_queries))
        self.stderr.write(
            f"  {name}: median {result['median_ms']} ms, p95 {result['p95_ms']} ms, "
            f"min {result['min_ms']} ms, "
            f"CPU {result['cpu_median_ms']} ms, {result['queries']} queries "
            f"({result['sql_median_ms']} ms SQL)"
            + (
                f", ids query {result['ids_query_ms']} ms (min {result['ids_query_min_ms']}, "
                f"server CPU {result.get('ids_query_cpu_ms', '?')}) "
                f"with {result['heap_fetches']:,} heap fetches"
                if "heap_fetches" in result
                else ""
            )
        )
        return result

    def _explain_deep_page(self, queries) -> dict:
        """PostgreSQL: how the deep page's ids query ran (EXPLAIN ANALYZE): its time in the
        database and how many index entries needed a visit to the table (heap fetches; none
        when the visibility map is current). Independent of the machine's load."""
        if connection.vendor != "postgresql":
            return {}
        offset_queries = [q["sql"] for q in queries if " OFFSET " in q["sql"].upper()]
        if not offset_queries:
            return {}
        plans = []
        with connection.cursor() as cursor:
            for _ in range(5):
                cursor.execute(f"EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) {offset_queries[0]}")
                explained = cursor.fetchone()[0]
                plans.append(
                    (json.loads(explained) if isinstance(explained, str) else explained)[0]
                )

        def heap_fetches(node) -> int:
            own = node.get("Heap Fetches", 0)
            return own + sum(heap_fetches(child) for child in node.get("Plans", []))

        times = [plan["Execution Time"] for plan in plans]
        result = {
            "ids_query_ms": round(statistics.median(times), 2),
            # The least disturbed of five runs: closest to the query's cost on an idle machine.
            "ids_query_min_ms": round(min(times), 2),
            "heap_fetches": heap_fetches(plans[-1]["Plan"]),
        }
        cpu = self._backend_cpu_ms(offset_queries[0])
        if cpu is not None:
            result["ids_query_cpu_ms"] = cpu
        return result

    def _backend_cpu_ms(self, sql: str, runs: int = 10) -> float | None:
        """The CPU time the database server process spends on `sql`, per run, read from
        /proc (a server on this machine only): unlike the wall time, it does not grow when
        other processes share the cores."""
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            stat = Path(f"/proc/{cursor.fetchone()[0]}/stat")

            def cpu_seconds() -> float:
                fields = stat.read_text().rsplit(")", 1)[1].split()
                return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

            try:
                before = cpu_seconds()
            except OSError:
                return None
            for _ in range(runs):
                cursor.execute(sql)
                cursor.fetchall()
            return round((cpu_seconds() - before) * 1000 / runs, 1)

    def _report(self, results, naive, counts, output):
        width = max(len(r["case"]) for r in results) + 2
        self.stdout.write("")
        self.stdout.write(
            f"{'case':<{width}}{'median ms':>10}{'p95 ms':>10}{'queries':>9}{'SQL ms':>9}"
            f"{'CPU ms':>9}"
        )
        for r in results:
            self.stdout.write(
                f"{r['case']:<{width}}{r['median_ms']:>10.1f}{r['p95_ms']:>10.1f}"
                f"{r['queries']:>9}{r['sql_median_ms']:>9.1f}{r['cpu_median_ms']:>9.1f}"
            )
        pages = [r for r in results if not r.get("bulk")]
        bulk = [r for r in results if r.get("bulk")]
        worst = max(pages, key=lambda r: r["p95_ms"])
        summary = {
            "worst_p95_ms": worst["p95_ms"],
            "worst_case": worst["case"],
            "max_queries": max(r["queries"] for r in results),
            "queries_constant": all(r["queries_constant"] for r in results),
        }
        if naive:
            self.stdout.write(
                f"{naive['case']:<{width}}{naive['median_ms']:>10.1f}{naive['p95_ms']:>10.1f}"
                f"{naive['queries']:>9}{naive['sql_median_ms']:>9.1f}"
            )
            same = next(r for r in results if r["case"] == "clients, sort -total_spent")
            summary["ratio_naive_to_same_sort"] = round(naive["median_ms"] / same["median_ms"])
            summary["ratio_naive_to_worst_case"] = round(naive["median_ms"] / worst["median_ms"])
            self.stdout.write(
                f"\nNaive / Clients tab sorted by total spent: "
                f"{summary['ratio_naive_to_same_sort']:,}× slower; naive / slowest case "
                f"({worst['case']}): {summary['ratio_naive_to_worst_case']:,}×."
            )
        ok = (
            worst["p95_ms"] <= TARGET_P95_MS
            and summary["max_queries"] <= TARGET_QUERIES
            and summary["queries_constant"]
            and (not naive or summary["ratio_naive_to_worst_case"] >= TARGET_RATIO)
            and all(r["median_ms"] <= TARGET_BULK_TAG_S * 1000 for r in bulk)
        )
        summary["targets_met"] = ok
        self.stdout.write(
            f"Targets (p95 ≤ {TARGET_P95_MS} ms, ≤ {TARGET_QUERIES} queries, ≥ {TARGET_RATIO}× "
            f"faster than naive): {'met' if ok else 'NOT met'}."
        )
        if connection.vendor == "postgresql":
            version = connection.pg_version
            with connection.cursor() as cursor:
                # The planner's row estimate: counting three million orders is not the point.
                cursor.execute(
                    "SELECT reltuples::bigint FROM pg_class WHERE relname = %s",
                    [Order._meta.db_table],
                )
                orders = cursor.fetchone()[0]
        else:
            version = connection.Database.sqlite_version
            orders = Order.objects.count()
        data = {
            "date": timezone.now().isoformat(timespec="seconds"),
            "machine": {
                "platform": platform.platform(),
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
            },
            "database": {"vendor": connection.vendor, "version": str(version)},
            "customers": counts,
            "orders_about": orders,
            "cases": results,
            "naive": naive,
            "summary": summary,
        }
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        self.stdout.write(f"Results written to {output}.")
