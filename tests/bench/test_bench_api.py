"""bench_api's in-process profile: it runs real order calls and reports CPU and SQL
statements per call (the figures the README quotes)."""

import json

import pytest
from django.core.management import call_command
from django.db import connection

from orders.models import Order, OrderStatus
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


def test_profile_counts_statements_per_creation_and_payment(tmp_path, settings):
    settings.STOREFRONT_API_RATE_LIMIT_CACHE = ""  # the database's counter: 4 statements
    settings.ALLOWED_HOSTS = ["127.0.0.1"]  # as bench_api's production settings have it
    # The key read once (a loaded machine could outlast the 5 s default between calls).
    settings.STOREFRONT_API_KEY_CACHE_SECONDS = 3600
    for _ in range(5):
        CustomerFactory()
    output = tmp_path / "api.json"
    call_command("bench_api", "--only", "profile", "--profile-calls", "10", "--output", str(output))
    result = json.loads(output.read_text())["profile"]
    for kind in ("create", "pay"):
        assert result[kind]["app_cpu_ms"] > 0
        # Each statement listed is one the call ran, the idempotency record among them.
        assert result[kind]["statements"] == len(result["statement_text"][kind])
        assert any("idempotencyrecord" in q for q in result["statement_text"][kind])
    # The rate-limit counter's (4 on PostgreSQL with its SET LOCAL, 3 on SQLite) and the
    # call's own 10 and 10 (no savepoint of the services'; creating reads the customer's last
    # push click, notifications.attribution).
    counter = 4 if connection.vendor == "postgresql" else 3
    assert result["create"]["statements"] == counter + 10
    assert result["pay"]["statements"] == counter + 10
    # warm-up 20 + 5 timed + 1 counted: created and paid, through the API.
    assert Order.objects.filter(status=OrderStatus.PAID).count() == 26


def test_the_cpu_meter_counts_a_backend_that_exits_during_the_run():
    """A gunicorn worker replaces its connection after CONN_MAX_AGE (60 s): the CPU its first
    backend spent must still count (a before/after pair of samples lost it)."""
    import os

    from bench.management.commands.bench_api import CpuMeter

    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL backends only")
    meter = CpuMeter(os.getpid()).start()
    backend = connection.get_new_connection(connection.get_connection_params())
    try:
        backend.execute("SELECT pg_sleep(2 * CAST(%s AS float))", [CpuMeter.POLL])
        backend.execute("SELECT count(*) FROM generate_series(1, 3000000)")
        backend.execute("SELECT pg_sleep(2 * CAST(%s AS float))", [CpuMeter.POLL])
    finally:
        backend.close()
    spent = meter.stop()
    assert spent["db"] >= 0.1, spent


def test_the_cpu_of_one_thread_is_read_apart_from_the_process():
    """The import's figures separate the worker's main thread (it applies the batches) from
    the thread reading ahead: a thread's CPU is its own, not its process's."""
    import os
    import threading
    import time

    from bench.management.commands.bench_api import _cpu_seconds

    pid = os.getpid()
    busy = threading.Thread(target=lambda: sum(range(30_000_000)))
    before, process_before = _cpu_seconds(pid, threading.get_native_id()), _cpu_seconds(pid)
    busy.start()
    busy.join()
    time.sleep(0.05)
    mine = _cpu_seconds(pid, threading.get_native_id()) - before
    process = _cpu_seconds(pid) - process_before
    assert process >= 0.2, process  # the busy thread's CPU counts in its process
    assert mine < process / 2, (mine, process)  # and not in this thread's


@pytest.mark.skipif(connection.vendor != "postgresql", reason="measures PostgreSQL")
def test_rewrites_measures_both_ways_and_leaves_the_table_as_it_was(tmp_path):
    from clients.models import Customer

    def indexes():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_index WHERE indrelid = 'clients_customer'::regclass"
            )
            return cursor.fetchone()[0]

    for _ in range(12):
        CustomerFactory()
    before = list(Customer.objects.order_by("pk").values_list("pk", "orders_count", "total_spent"))
    count = indexes()
    output = tmp_path / "api.json"
    call_command("bench_api", "--only", "rewrites", "--sample", "12", "--output", str(output))
    result = json.loads(output.read_text())["rewrites"]
    assert result["customers_per_round"] == 2
    assert 0 < result["list_indexes"] < result["indexes"] == count
    for kind in ("all indexes", "without the lists' indexes"):
        assert len(result[kind]["wal_kb_per_row"]) == 3
        assert all(kb > 0 for kb in result[kind]["wal_kb_per_row"])
    # Everything was rolled back: the indexes and the statistics are as they were.
    assert indexes() == count
    after = list(Customer.objects.order_by("pk").values_list("pk", "orders_count", "total_spent"))
    assert after == before
