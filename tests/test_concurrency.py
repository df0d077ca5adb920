"""Concurrent writes to one customer on PostgreSQL: statistics stay exact, edits are not lost.

Each worker thread has its own database connection (Django's connections are per thread),
so these are real concurrent transactions contending for the same rows.
"""

import re
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.utils import timezone

from clients.models import AuditEntry, Customer, Note
from clients.services import Conflict, customer_contact_values, customer_update_contact, note_save
from orders.models import Order, OrderStatus
from orders.services import LineInput, order_place, order_refund, order_set_status
from tests.factories import AddressFactory, CustomerFactory, UserFactory

pytestmark = [
    pytest.mark.skipif(
        not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"),
        reason="needs PostgreSQL: SQLite serializes every write transaction, so nothing races",
    ),
    # Real commits seen by other connections; the roles created by migrations are restored after.
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

WAIT = 120  # seconds: a deadlock or a hang fails the test instead of blocking the run


def run_concurrently(jobs):
    """Run the callables at the same instant, each in its own thread and connection.

    Returns each job's result or the exception it raised, in order.
    """
    barrier = threading.Barrier(len(jobs))

    def worker(job):
        try:
            barrier.wait(timeout=WAIT)
            return job()
        except Exception as error:  # collected and asserted on by the test
            return error
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = [pool.submit(worker, job) for job in jobs]
        return [future.result(timeout=WAIT) for future in futures]


def _place(customer, number: str, total: str, placed_at, source: str) -> Order:
    return order_place(
        customer=customer,
        number=number,
        lines=[LineInput(product_name="Mug", sku="MUG", quantity=1, unit_price=Decimal(total))],
        placed_at=placed_at,
        source=source,
        medium="cpc",
    )


def test_50_concurrent_finalizations_and_refunds_keep_statistics_exact():
    customer = CustomerFactory()
    AddressFactory(customer=customer)
    start = timezone.now() - timedelta(days=30)
    # Ten orders already paid, each about to receive two competing refunds of 60 of its 100.
    paid = []
    for n in range(10):
        order = _place(customer, f"P{n}", "100.00", start + timedelta(hours=n), "newsletter")
        paid.append(order_set_status(order=order, status=OrderStatus.PAID))
    # Thirty pending orders: twenty-five get paid, five cancelled, all at once.
    pending = [
        _place(customer, f"N{n}", f"{10 + n}.25", start + timedelta(days=1, hours=n), f"src{n}")
        for n in range(30)
    ]
    to_pay, to_cancel = pending[:25], pending[25:]

    jobs = [
        *(lambda o=o: order_set_status(order=o, status=OrderStatus.PAID) for o in to_pay),
        *(lambda o=o: order_set_status(order=o, status=OrderStatus.CANCELLED) for o in to_cancel),
        *(lambda o=o: order_refund(order=o, amount=Decimal("60.00")) for o in paid for _ in "ab"),
    ]
    assert len(jobs) == 50
    results = run_concurrently(jobs)

    unexpected = [
        r for r in results if isinstance(r, Exception) and not isinstance(r, ValidationError)
    ]
    assert not unexpected, unexpected
    refusals = [r for r in results if isinstance(r, ValidationError)]
    # Of each pair of refunds exactly one went through: 60 + 60 would exceed the total.
    assert len(refusals) == 10
    assert all(r.code == "refund-exceeds-paid" and r.conflict for r in refusals)
    assert (
        sorted(
            Order.objects.filter(number__startswith="P").values_list("refunded_amount", flat=True)
        )
        == [Decimal("60.00")] * 10
    )

    # The expected statistics, worked out from what was done rather than read back.
    expected_spent = 10 * Decimal("40.00") + sum(Decimal(f"{10 + n}.25") for n in range(25))
    newest = to_pay[-1]
    customer.refresh_from_db()
    assert customer.orders_count == 35
    assert customer.total_spent == expected_spent
    assert customer.first_order_at == start
    assert customer.last_order_at == newest.placed_at
    assert customer.last_order_id == newest.pk
    assert customer.last_source == "src24"

    out = StringIO()
    call_command("rebuild_customer_stats", "--check", stdout=out, stderr=StringIO())
    assert ", 0 had drifted" in out.getvalue()


def _form_state(html: str) -> dict:
    """The hidden version and signed base values of the contact form, as a browser posts them."""
    version = re.search(r'name="version" value="(\d+)"', html).group(1)
    base = re.search(r'name="base" value="([^"]+)"', html).group(1)
    return {"version": version, "base": base}


def test_20_concurrent_saves_of_the_contact_form_from_stale_copies():
    customer = CustomerFactory(first_name="Ada", last_name="Lovelace", phone="+33 6 00 00 00 01")
    original_version = customer.version
    clients = []
    for n in range(20):
        client = Client()
        client.force_login(UserFactory(username=f"editor{n}", role="Staff"))
        clients.append(client)
    url = f"/clients/{customer.pk}/contact/"
    # Everyone opened the form before anyone saved: twenty stale copies of the same version.
    state = _form_state(clients[0].get(url).text)

    def save(n):
        data = {
            **state,
            "first_name": f"Typed{n}",
            "last_name": "Lovelace",
            "phone": "+33 6 11 22 33 44",
        }
        return clients[n].post(url, data)

    responses = run_concurrently([lambda n=n: save(n) for n in range(20)])

    errors = [r for r in responses if isinstance(r, Exception)]
    assert not errors, errors
    statuses = Counter(r.status_code for r in responses)
    assert statuses == {302: 1, 409: 19}
    winner = next(n for n, r in enumerate(responses) if r.status_code == 302)
    customer.refresh_from_db()
    assert customer.first_name == f"Typed{winner}"
    assert customer.version == original_version + 1
    entries = AuditEntry.objects.filter(customer=customer, action="contact_update")
    assert [(e.actor.username, e.changes["first_name"]) for e in entries] == [
        (f"editor{winner}", ["Ada", f"Typed{winner}"])
    ]
    for n, response in enumerate(responses):
        if n == winner:
            continue
        page = response.text
        # The conflict message names who saved what, and what this person typed is kept.
        assert "Not saved:" in page
        assert f"editor{winner}" in page
        assert f'value="Typed{n}"' in page
        # The form is rebased on the saved version: saving again is deliberate and works.
        assert _form_state(page)["version"] == str(customer.version)


def test_20_concurrent_service_calls_from_one_stale_version_let_exactly_one_through():
    customer = CustomerFactory(first_name="Grace", last_name="Hopper", phone="")
    actor = UserFactory(role="Staff")
    base = customer_contact_values(customer)

    def save(n):
        return customer_update_contact(
            customer=customer,
            actor=actor,
            version=customer.version,
            base=base,
            first_name=f"G{n}",
            last_name="Hopper",
            phone="",
        )

    results = run_concurrently([lambda n=n: save(n) for n in range(20)])

    saved = [r for r in results if isinstance(r, Customer)]
    conflicts = [r for r in results if isinstance(r, Conflict)]
    assert len(saved) == 1 and len(conflicts) == 19, results
    winner = saved[0].first_name
    assert all(c.changes == {"first_name": ["Grace", winner]} for c in conflicts)
    customer.refresh_from_db()
    assert customer.first_name == winner


def test_20_concurrent_note_saves_from_one_stale_copy_keep_every_saved_version():
    customer = CustomerFactory()
    actor = UserFactory(role="Staff")
    first = note_save(customer=customer, actor=actor, text="Prefers email.", based_on=None)

    results = run_concurrently(
        [
            lambda n=n: note_save(
                customer=customer, actor=actor, text=f"Version {n}", based_on=first.pk
            )
            for n in range(20)
        ]
    )

    saved = [r for r in results if isinstance(r, Note)]
    conflicts = [r for r in results if isinstance(r, Conflict)]
    assert len(saved) == 1 and len(conflicts) == 19, results
    assert all(c.changes == {"note": ["Prefers email.", saved[0].text]} for c in conflicts)
    texts = list(
        Note.objects.filter(customer=customer).order_by("id").values_list("text", flat=True)
    )
    assert texts == ["Prefers email.", saved[0].text]
