"""PostgreSQL: 50 parallel order calls for one customer through the API keep statistics exact.

Each thread has its own database connection and its own test client, so the calls are real
concurrent transactions on the customer's and the orders' rows.
"""

import threading
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection

from clients.models import Customer
from orders.models import Order, OrderStatus
from tests.factories import CustomerFactory
from tests.storefront.conftest import Api, make_key

pytestmark = [
    pytest.mark.skipif(
        not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"),
        reason="needs PostgreSQL: SQLite serializes every write transaction, so nothing races",
    ),
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

WAIT = 120


def run_concurrently(jobs):
    barrier = threading.Barrier(len(jobs))

    def worker(job):
        try:
            barrier.wait(timeout=WAIT)
            return job()
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        return [f.result(timeout=WAIT) for f in [pool.submit(worker, job) for job in jobs]]


def lines(amount: str):
    return [{"product_name": "Mug", "quantity": 1, "unit_price": amount}]


def test_50_parallel_order_calls_for_one_customer_leave_the_statistics_exact():
    key = make_key()
    customer = CustomerFactory()
    api = Api(key)
    # Ten paid orders of 100, about to get two competing refunds of 60 each.
    for n in range(10):
        body = {
            "number": f"P{n}",
            "customer_id": customer.pk,
            "lines": lines("100.00"),
            "placed_at": f"2026-01-01T{n:02d}:00:00Z",
            "source": "old",
        }
        assert api.post("/orders", body).status_code == 201
        assert api.post(f"/orders/P{n}/pay", raw=b"").status_code == 200
    # Ten pending orders to pay or cancel at the same time as new orders are created.
    for n in range(10):
        body = {
            "number": f"N{n}",
            "customer_id": customer.pk,
            "lines": lines(f"{10 + n}.25"),
            "placed_at": f"2026-02-01T{n:02d}:00:00Z",
            "source": f"src{n}",
        }
        assert api.post("/orders", body).status_code == 201

    def call(method, path, body=None):
        def job():
            client = Api(key)
            if body is None:
                return client.post(path, raw=b"").status_code
            return getattr(client, method)(path, body).status_code

        return job

    jobs = [
        *(call("post", f"/orders/N{n}/pay") for n in range(8)),
        *(call("post", f"/orders/N{n}/cancel") for n in range(8, 10)),
        *(
            call("post", f"/orders/P{n}/refunds", {"amount": "60.00"})
            for n in range(10)
            for _ in "ab"
        ),
        *(
            call(
                "post",
                "/orders",
                {
                    "number": f"C{n}",
                    "customer_id": customer.pk,
                    "lines": lines("5.00"),
                    "placed_at": f"2026-03-01T{n:02d}:00:00Z",
                    "source": "new",
                },
            )
            for n in range(10)
        ),
    ]
    # A second creation of each of the first five new numbers: exactly one of each wins.
    jobs += [
        call(
            "post",
            "/orders",
            {
                "number": f"C{n}",
                "customer_id": customer.pk,
                "lines": lines("5.00"),
                "placed_at": f"2026-03-01T{n:02d}:00:00Z",
            },
        )
        for n in range(5)
    ]
    jobs += [call("post", "/orders/N9/pay") for _ in range(5)]  # competing with its cancel
    jobs = jobs[:50]
    assert len(jobs) == 50
    statuses = run_concurrently(jobs)

    assert all(s in (200, 201, 409) for s in statuses), statuses
    refunds = statuses[10:30]
    assert sorted(refunds) == [200] * 10 + [409] * 10
    creations = statuses[30:45]
    assert creations.count(201) == 10 and creations.count(409) == 5
    assert Order.objects.filter(number__startswith="C").count() == 10
    n9 = Order.objects.get(number="N9").status
    assert n9 in (OrderStatus.CANCELLED, OrderStatus.PAID)

    paid_new = [Decimal(f"{10 + n}.25") for n in range(8)] + (
        [Decimal("19.25")] if n9 == OrderStatus.PAID else []
    )
    customer = Customer.objects.get(pk=customer.pk)
    assert customer.orders_count == 10 + len(paid_new)
    assert customer.total_spent == 10 * Decimal("40.00") + sum(paid_new)
    newest = "N9" if n9 == OrderStatus.PAID else "N7"
    assert customer.last_order_id == Order.objects.get(number=newest).pk
    assert customer.last_source == ("src9" if n9 == OrderStatus.PAID else "src7")
    out = StringIO()
    call_command("rebuild_customer_stats", "--check", stdout=out, stderr=StringIO())
    assert ", 0 had drifted" in out.getvalue()
