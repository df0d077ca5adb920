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


def test_parallel_imports_and_order_calls_for_the_same_customers_leave_the_statistics_exact():
    """The import adds each batch to its customers' statistics (their rows locked in id order,
    then one UPDATE, as a payment does): imports running beside payments and refunds of the same
    customers, and beside each other, add up."""
    import json

    key = make_key()
    ada, bob = CustomerFactory(), CustomerFactory()
    api = Api(key)
    for n in range(10):
        body = {
            "number": f"Q{n}",
            "customer_id": (ada if n % 2 else bob).pk,
            "lines": lines("100.00"),
            "placed_at": f"2026-01-01T{n:02d}:00:00Z",
        }
        assert api.post("/orders", body).status_code == 201
    for n in range(5, 10):  # paid now, refunded in part while the imports run
        assert api.post(f"/orders/Q{n}/pay", raw=b"").status_code == 200

    def order(number, customer, status, **extra):
        return {
            "type": "order",
            "number": number,
            "customer_id": customer.pk,
            "placed_at": extra.pop("placed_at", f"2026-02-{1 + len(number) % 9:02d}T10:00:00Z"),
            "lines": lines("100.00"),
            "status": status,
            **extra,
        }

    def import_job(k):
        body = [
            order(f"I{k}-a", ada, "paid", placed_at=f"2026-03-01T{k:02d}:00:00Z"),
            order(f"I{k}-b", bob, "fulfilled", refunded_amount="25.00"),
            order(f"I{k}-c", bob, "refunded"),
            # The pending order Q{k} paid by this import (the file carries its first figures).
            order(f"Q{k}", ada if k % 2 else bob, "paid", placed_at=f"2026-01-01T{k:02d}:00:00Z"),
        ]

        def job():
            response = Api(key).post(
                "/import",
                raw="".join(json.dumps(line) + "\n" for line in body).encode(),
                content_type="application/x-ndjson",
            )
            return [json.loads(x) for x in b"".join(response.streaming_content).splitlines()]

        return job

    def refund(n):
        return lambda: Api(key).post(f"/orders/Q{n}/refunds", {"amount": "10.00"}).status_code

    jobs = [import_job(k) for k in range(5)] + [refund(n) for n in range(5, 10) for _ in "ab"]
    results = run_concurrently(jobs)

    for answers in results[:5]:
        assert [a["result"] for a in answers[:-1]] == ["created"] * 3 + ["updated"], answers
    assert results[5:] == [200] * 10
    ada, bob = Customer.objects.get(pk=ada.pk), Customer.objects.get(pk=bob.pk)
    # ada: Q5, Q7, Q9 (100 - 20 each), Q1, Q3 (paid by imports), five I-a orders of 100.
    assert (ada.orders_count, ada.total_spent) == (10, Decimal("940.00"))
    # bob: Q6, Q8 (80 each), Q0, Q2, Q4 (100), five I-b (75) and five I-c (0).
    assert (bob.orders_count, bob.total_spent) == (15, Decimal("835.00"))
    assert ada.last_order_id == Order.objects.get(number="I4-a").pk
    out = StringIO()
    call_command("rebuild_customer_stats", "--check", stdout=out, stderr=StringIO())
    assert ", 0 had drifted" in out.getvalue()
