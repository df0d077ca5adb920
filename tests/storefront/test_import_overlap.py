"""The NDJSON import on PostgreSQL outside a transaction: each batch on a connection of its
own, writing its orders while the batch before it updates its customers (_Applying), with
the same answers, the same order of commits and the same statistics as one after the other."""

import json
import threading
import time
from decimal import Decimal

import pytest
from django.conf import settings

from clients.models import Customer
from orders.models import Order
from storefront.endpoints import imports
from tests.factories import CustomerFactory
from tests.storefront.conftest import Api, make_key
from tests.storefront.test_import import NDJSON, assert_no_drift, order_line, send

pytestmark = [
    pytest.mark.skipif(
        not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"),
        reason="PostgreSQL only: on SQLite the batches run one after the other",
    ),
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def _appliers():
    return [t for t in threading.enumerate() if t.name == "import-batch"]


@pytest.fixture
def small_batches(monkeypatch):
    monkeypatch.setattr(imports, "BATCH", 4)
    monkeypatch.setattr(imports, "AHEAD", 4)


def _watched(monkeypatch, on_turn):
    """orders_import with a wait_turn that first calls on_turn(the batch's first order
    number): the point where a batch has written its orders and has not touched its
    customers yet."""
    apply = imports.orders_import

    def applying(items, wait_turn=None):
        def turn():
            on_turn(items[0].draft.number)
            if wait_turn is not None:
                wait_turn()

        return apply(items, wait_turn=turn)

    monkeypatch.setattr(imports, "orders_import", applying)


def _wait_for(found, wanted) -> bool:
    deadline = time.monotonic() + 10
    while wanted not in found and time.monotonic() < deadline:
        time.sleep(0.01)
    return wanted in found


def test_the_next_batch_writes_its_orders_while_the_one_before_updates_its_customers(
    small_batches, monkeypatch
):
    """The first batch waits at its turn until the second one has written its orders: they
    overlap (one after the other, the second would never come and the first gives up)."""
    ada, bob = CustomerFactory(), CustomerFactory()
    reached, overlapped = [], []

    def on_turn(first):
        reached.append(first)
        if first == "O-0":
            overlapped.append(_wait_for(reached, "O-4"))

    _watched(monkeypatch, on_turn)
    lines = [order_line(f"O-{n}", ada if n % 2 else bob, status="paid") for n in range(10)]
    _, answers = send(Api(make_key()), *lines)
    assert overlapped == [True]
    assert [a["line"] for a in answers[:-1]] == list(range(1, 11))
    assert answers[-1]["summary"]["created"] == 10
    ada, bob = Customer.objects.get(pk=ada.pk), Customer.objects.get(pk=bob.pk)
    assert (ada.orders_count, bob.orders_count) == (5, 5)
    assert ada.total_spent == bob.total_spent == 5 * Decimal("20.00")
    assert_no_drift()
    assert not _appliers()


def test_answers_and_commits_keep_the_files_order(small_batches):
    """Errors between batches, the same order in two batches in a row, a customer line
    between orders, its orders by external id after it: answered in the file's order, as one
    batch after the other would."""
    ada = CustomerFactory()
    lines = [
        *(order_line(f"K-{n}", ada) for n in range(4)),  # a full batch, pending
        {"type": "nothing"},  # answered after it
        order_line("K-0", ada, status="paid"),  # the first order again: paid
        order_line("K-9", ada, status="paid"),
        {"type": "customer", "email": "zoe@example.com", "external_id": "Z1"},
        order_line("Z-1", external_id="Z1", status="fulfilled"),
        order_line("K-1", ada, status="cancelled"),
    ]
    _, answers = send(Api(make_key()), *lines)
    assert [a["line"] for a in answers[:-1]] == list(range(1, 11))
    assert [a["result"] for a in answers[:-1]] == [
        *["created"] * 4,
        "error",
        "updated",
        "created",
        "created",
        "created",
        "updated",
    ]
    assert answers[-1]["summary"] == {"created": 7, "updated": 2, "unchanged": 0, "error": 1}
    ada = Customer.objects.get(pk=ada.pk)
    assert ada.orders_count == 2
    zoe = Customer.objects.get(external_id="Z1")
    assert zoe.orders_count == 1
    assert Order.objects.get(number="K-1").status == "cancelled"
    assert_no_drift()
    assert not _appliers()


def test_a_batch_that_fails_stops_the_import_and_the_batch_after_it_is_rolled_back(
    small_batches, monkeypatch
):
    """The second batch fails once it has written its orders (before its customers): the
    third, written meanwhile on the other connection, is rolled back; what was answered is
    stored, nothing else."""
    customer = CustomerFactory()
    reached = []

    def on_turn(first):
        reached.append(first)
        if first == "F-4":
            _wait_for(reached, "F-8")
            raise RuntimeError("the disk is full")

    _watched(monkeypatch, on_turn)
    response = Api(make_key()).post(
        "/import",
        raw="".join(
            json.dumps(order_line(f"F-{n}", customer, status="paid")) + "\n" for n in range(14)
        ).encode(),
        content_type=NDJSON,
    )
    answers = [json.loads(x) for x in b"".join(response.streaming_content).splitlines()]
    assert "F-8" in reached  # the third batch had written its orders
    assert [a["result"] for a in answers[:-1]] == ["created"] * 4
    assert answers[-1]["error"] == "server-error"
    assert sorted(Order.objects.values_list("number", flat=True)) == [f"F-{n}" for n in range(4)]
    assert Customer.objects.get(pk=customer.pk).orders_count == 4
    assert_no_drift()
    assert not _appliers()
