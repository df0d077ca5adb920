"""The NDJSON bulk import through HTTP: every line answered, valid lines applied."""

import json
import threading
import time
from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from clients.models import Customer
from orders.models import Order
from storefront.endpoints import imports
from tests.factories import CustomerFactory
from tests.storefront.conftest import Api, assert_problem, make_key

pytestmark = pytest.mark.django_db

NDJSON = "application/x-ndjson"
LINES = [{"product_name": "Mug", "quantity": 2, "unit_price": "10.00"}]


def order_line(number, customer=None, external_id=None, **extra):
    line = {
        "type": "order",
        "number": number,
        "placed_at": "2026-01-05T10:00:00+01:00",
        "lines": LINES,
        **extra,
    }
    if customer is not None:
        line["customer_id"] = customer.pk
    if external_id is not None:
        line["customer_external_id"] = external_id
    return line


def send(api, *lines, raw: bytes | None = None):
    body = raw if raw is not None else "".join(json.dumps(x) + "\n" for x in lines).encode()
    response = api.post("/import", raw=body, content_type=NDJSON)
    if response.status_code != 200:
        return response, None
    answers = [json.loads(x) for x in b"".join(response.streaming_content).splitlines()]
    return response, answers


def assert_no_drift():
    out = StringIO()
    call_command("rebuild_customer_stats", "--check", stdout=out, stderr=StringIO())
    assert ", 0 had drifted" in out.getvalue()


def test_customers_and_orders_are_created_then_unchanged_then_updated(api):
    lines = [
        {"type": "customer", "email": "ada@example.com", "first_name": "Ada", "external_id": "c1"},
        order_line("H-1", external_id="c1", status="fulfilled"),
        order_line(
            "H-2",
            external_id="c1",
            status="pending",
            source="google",
            medium="cpc",
            placed_at="2026-01-06T10:00:00Z",
        ),
        order_line("H-3", external_id="c1", status="refunded"),
    ]
    response, answers = send(api, *lines)
    assert response["Content-Type"] == NDJSON
    assert [(a["line"], a["result"]) for a in answers[:-1]] == [
        (1, "created"),
        (2, "created"),
        (3, "created"),
        (4, "created"),
    ]
    assert answers[-1] == {"summary": {"created": 4, "updated": 0, "unchanged": 0, "error": 0}}
    ada = Customer.objects.get(external_id="c1")
    assert (ada.orders_count, ada.total_spent) == (2, Decimal("20.00"))

    _, again = send(api, *lines)
    assert [a["result"] for a in again[:-1]] == ["unchanged"] * 4

    changed = [
        {
            "type": "customer",
            "email": "ada@example.com",
            "first_name": "Ada B.",
            "external_id": "c1",
        },
        order_line(
            "H-2",
            external_id="c1",
            status="paid",
            refunded_amount="5.00",
            source="google",
            medium="cpc",
            placed_at="2026-01-06T10:00:00Z",
        ),
    ]
    _, updated = send(api, *changed)
    assert [a["result"] for a in updated[:-1]] == ["updated", "updated"]
    ada.refresh_from_db()
    assert (ada.first_name, ada.orders_count, ada.total_spent) == ("Ada B.", 3, Decimal("35.00"))
    assert ada.last_source == "google"
    assert_no_drift()


def test_a_customer_line_brings_the_day_the_account_was_opened_on_the_shop(api):
    opened = {"type": "customer", "email": "old@example.com", "created_at": "2019-04-02T09:30:00Z"}
    _, answers = send(api, opened, {**opened, "email": "new@example.com"})
    assert [a["result"] for a in answers[:-1]] == ["created", "created"]
    old = Customer.objects.get(email="old@example.com")
    assert old.created_at.isoformat() == "2019-04-02T09:30:00+00:00"
    # A customer already there keeps its date: the line changes nothing.
    _, answers = send(api, {**opened, "created_at": "2020-01-01T00:00:00Z"})
    assert answers[0]["result"] == "unchanged"
    old.refresh_from_db()
    assert old.created_at.year == 2019
    future = (timezone.now() + timedelta(days=2)).isoformat()
    _, answers = send(
        api,
        {**opened, "email": "soon@example.com", "created_at": future},
        {**opened, "email": "ancient@example.com", "created_at": "1989-12-31T23:00:00Z"},
        {**opened, "email": "naive@example.com", "created_at": "2019-04-02T09:30:00"},
    )
    assert [a["errors"][0] for a in answers[:-1]] == [
        {"field": "created_at", "message": "is in the future"},
        {"field": "created_at", "message": "is before 1990"},
        {"field": "created_at", "message": answers[2]["errors"][0]["message"]},
    ]
    assert "time zone" in answers[2]["errors"][0]["message"]
    assert not Customer.objects.filter(email__in=["soon@example.com", "ancient@example.com"])


def test_a_customer_line_changes_the_fields_it_gives_and_keeps_the_others(api):
    """A migration that sends only the email and id of a customer already here must not
    empty their name, phone and language; the history says the shop did it."""
    from clients.models import AuditEntry, AuditOrigin

    ada = CustomerFactory(
        email="ada@example.com",
        external_id="c1",
        first_name="Ada",
        last_name="Lovelace",
        phone="+33 6 12 34 56 78",
        language="fr",
    )
    _, answers = send(api, {"type": "customer", "email": "ada@example.com", "external_id": "c1"})
    assert answers[0]["result"] == "unchanged"
    _, answers = send(
        api, {"type": "customer", "email": "ada@example.com", "external_id": "c1", "phone": ""}
    )
    assert answers[0]["result"] == "updated"  # a field given empty is emptied
    ada.refresh_from_db()
    assert (ada.first_name, ada.last_name, ada.phone, ada.language) == (
        "Ada",
        "Lovelace",
        "",
        "fr",
    )
    entry = AuditEntry.objects.filter(customer=ada).latest("pk")
    assert (entry.origin, entry.changes) == (
        AuditOrigin.SHOP,
        {"phone": ["+33 6 12 34 56 78", ""]},
    )
    _, answers = send(api, {"type": "customer", "email": "new@example.com", "first_name": "Bo"})
    created = AuditEntry.objects.get(customer_id=answers[0]["id"])
    assert (created.action, created.origin) == ("sign_up", AuditOrigin.SHOP)


def test_an_order_made_through_the_api_moves_forward_by_an_import_line_copying_it(api):
    """An order created without placed_at is placed now, to the microsecond: the API says so
    to the microsecond, so a line copying what the API answered is that order (its number,
    customer, total and time match) and moves it forward."""
    customer = CustomerFactory()
    created = api.post("/orders", {"number": "API-1", "customer_id": customer.pk, "lines": LINES})
    assert created.status_code == 201, created.content
    read = api.get("/orders/API-1").json()
    stored = Order.objects.get(number="API-1").placed_at
    assert read["placed_at"] == stored.isoformat().replace("+00:00", "Z")
    line = {
        "type": "order",
        "number": "API-1",
        "customer_id": customer.pk,
        "placed_at": read["placed_at"],
        "lines": LINES,
        "status": "paid",
    }
    _, answers = send(api, line)
    assert answers[0]["result"] == "updated", answers
    assert Order.objects.get(number="API-1").status == "paid"


def test_customer_lines_are_applied_together_and_a_refused_one_leaves_the_others(api):
    """Consecutive customer lines share a transaction (a savepoint each): an email already
    taken, a line that is no JSON and a group boundary (imports.PEOPLE) between them change
    neither the others nor the answers' order."""
    CustomerFactory(email="taken@example.com", external_id="t1")
    people = [
        {"type": "customer", "email": f"p{i}@example.com", "first_name": f"P{i}"}
        for i in range(imports.PEOPLE + 5)
    ]
    people[3] = {"type": "customer", "email": "taken@example.com", "external_id": "other"}
    raw = b"".join(json.dumps(p).encode() + b"\n" for p in people[:10])
    raw += b"{not json\n"
    raw += b"".join(json.dumps(p).encode() + b"\n" for p in people[10:])
    raw += json.dumps(order_line("G-1", external_id="t1", status="paid")).encode() + b"\n"
    _, answers = send(api, raw=raw)
    results = [(a["line"], a["result"]) for a in answers[:-1]]
    assert [line for line, _ in results] == list(range(1, len(people) + 3))
    assert results[3] == (4, "error") and results[10] == (11, "error")
    assert answers[3]["errors"] == [
        {"field": "email", "message": "another customer already has it"}
    ]
    assert {result for _, result in results[:-1]} - {"error"} == {"created"}
    assert results[-1] == (len(people) + 2, "created")
    assert Customer.objects.filter(email__startswith="p").count() == len(people) - 1
    assert answers[-1]["summary"] == {
        "created": len(people),
        "updated": 0,
        "unchanged": 0,
        "error": 2,
    }
    assert_no_drift()


def test_a_line_that_is_not_utf8_is_refused(api):
    """UTF-8 as the JSON calls read it: json.loads of bytes also guessed UTF-16 and UTF-32."""
    line = json.dumps({"type": "customer", "email": "u16@example.com"})
    raw = line.encode("utf-16-le") + b"\n" + b"\xef\xbb\xbf" + line.encode() + b"\n"
    _, answers = send(api, raw=raw)
    assert [a["result"] for a in answers[:-1]] == ["error", "error"]
    assert not Customer.objects.filter(email="u16@example.com").exists()


def test_every_bad_line_is_answered_with_its_reasons_and_the_others_applied(api):
    customer = CustomerFactory()
    Order.objects.all().delete()
    raw = b"\n".join(
        [
            json.dumps(order_line("B-1", customer, status="paid")).encode(),
            b"{not json",
            b"[1, 2]",
            json.dumps({"type": "refund"}).encode(),
            json.dumps(order_line("B-2", customer, status="lost", colour="red")).encode(),
            json.dumps(
                order_line("B-3", customer, status="refunded", refunded_amount="1")
            ).encode(),
            json.dumps(order_line("B-4", external_id="nobody")).encode(),
            json.dumps(order_line("B-1", customer, status="cancelled")).encode(),
            b'{"type": "order", "type": "customer"}',
            b"\xff\xfe",
            b"",
            json.dumps({"type": "customer", "email": "not-an-email"}).encode(),
            json.dumps(order_line("B-5", customer, currency="USD")).encode(),
            json.dumps(order_line("B-6", customer, status="fulfilled")).encode(),
        ]
    )
    _, answers = send(api, raw=raw)
    by_line = {a["line"]: a for a in answers[:-1]}
    assert [n for n, a in by_line.items() if a["result"] != "error"] == [1, 14]
    assert sorted(by_line) == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13, 14]  # 11 is blank
    assert {e["field"] for e in by_line[5]["errors"]} == {"status", "colour"}
    assert by_line[6]["errors"][0]["field"] == "refunded_amount"
    assert by_line[8]["errors"][0]["code"] == "invalid-transition"
    assert by_line[13]["errors"][0]["field"] == "currency"
    assert answers[-1]["summary"] == {"created": 2, "updated": 0, "unchanged": 0, "error": 11}
    assert sorted(Order.objects.values_list("number", flat=True)) == ["B-1", "B-6"]
    assert_no_drift()


def test_lines_too_long_and_files_too_long(api, monkeypatch):
    monkeypatch.setattr(imports, "MAX_LINE_BYTES", 300)
    monkeypatch.setattr(imports, "MAX_LINES", 3)
    customer = CustomerFactory()
    long = order_line("L-1", customer, campaign="x" * 200)
    _, answers = send(
        api,
        long,
        order_line("L-2", customer),
        order_line("L-3", customer),
        order_line("L-4", customer),
    )
    assert answers[0]["result"] == "error" and "longer" in answers[0]["errors"][0]["message"]
    assert [a["result"] for a in answers[1:3]] == ["created", "created"]
    assert answers[-1]["truncated"] is True
    assert not Order.objects.filter(number="L-4").exists()


def test_the_import_needs_its_scope_its_type_and_a_body_within_the_limit(api_as, monkeypatch):
    customer = CustomerFactory()
    body = (json.dumps(order_line("S-1", customer)) + "\n").encode()
    assert_problem(
        api_as("customers:write").post("/import", raw=body, content_type=NDJSON), 403, "forbidden"
    )
    writer = api_as("orders:write")
    assert_problem(writer.post("/import", raw=body), 415, "unsupported-media-type")
    monkeypatch.setattr(imports, "MAX_BODY", 10)
    # The limit is read when the route is declared: check it against the route's options.
    from storefront.endpoints.imports import import_ndjson

    assert import_ndjson.call_options.max_body == imports.MAX_LINES * 2048
    big = b"x" * (import_ndjson.call_options.max_body + 1)
    assert_problem(writer.post("/import", raw=big, content_type=NDJSON), 413, "payload-too-large")
    assert_problem(Api(None).post("/import", raw=body, content_type=NDJSON), 401, "unauthenticated")
    assert not Order.objects.exists()


def test_memory_does_not_grow_with_the_body(api, monkeypatch):
    """The body is read a block at a time: the request's body is never loaded whole, and the
    first answers come out before the end of a long body has been read."""
    monkeypatch.setattr(imports, "READ_BYTES", 4096)
    customer = CustomerFactory()
    count = 3 * imports.BATCH
    lines = [order_line(f"M-{n}", customer) for n in range(count)]
    response = api.post(
        "/import",
        raw="".join(json.dumps(x) + "\n" for x in lines).encode(),
        content_type=NDJSON,
    )
    chunks = iter(response.streaming_content)
    first = [json.loads(x) for x in next(chunks).splitlines()]
    # The first answers come out, one piece for the batch, once the first batch is applied.
    assert [a["line"] for a in first] == list(range(1, imports.BATCH + 1))
    assert Order.objects.count() == imports.BATCH
    assert not hasattr(response.wsgi_request, "_body")
    assert len(response.wsgi_request.environ["wsgi.input"]) > 0  # bytes not read yet
    rest = [json.loads(x) for c in chunks for x in c.splitlines()]
    assert rest[-1]["summary"]["created"] == count
    assert len(response.wsgi_request.environ["wsgi.input"]) == 0


def test_a_key_is_made_for_each_test():
    assert make_key(["orders:write"]).startswith("bo_")


def test_an_empty_body_is_refused(api):
    response = api.post("/import", raw=b"", content_type="application/x-ndjson")
    document = assert_problem(response, 422, "validation")
    assert document["errors"] == [{"field": "body", "message": "is required"}]


def test_imported_orders_leave_one_audit_entry_each_and_none_when_unchanged(api):
    from clients.models import AuditEntry

    customer = CustomerFactory()
    send(api, order_line("AU-1", customer, status="paid"), order_line("AU-2", customer))
    send(api, order_line("AU-1", customer, status="fulfilled"), order_line("AU-2", customer))
    entries = list(
        AuditEntry.objects.filter(customer=customer)
        .order_by("pk")
        .values_list("action", "origin", "changes")
    )
    assert entries == [
        ("order_import", "shop", {"order": "AU-1", "status": ["", "paid"]}),
        ("order_import", "shop", {"order": "AU-2", "status": ["", "pending"]}),
        ("order_import", "shop", {"order": "AU-1", "status": ["paid", "fulfilled"]}),
    ]


SCARF = [{"product_name": "Scarf", "quantity": 1, "unit_price": "5.00"}]


def test_imported_orders_are_stored_as_sent_with_their_lines_and_products(api):
    """On PostgreSQL the batch is written with COPY: every column as the ORM would store it
    (addresses as JSON, amounts, the status), the lines, and the products bought by each
    finalized order, including one moved to paid by a later import, and only those."""
    from clients.services import address_create
    from orders.models import CustomerProduct, OrderLine

    customer = CustomerFactory()
    address_create(
        customer=customer,
        make_default=True,
        name="Ada L",
        line1="1 rue Neuve",
        postal_code="69001",
        city="Lyon",
        country="FR",
    )
    two = [*LINES, {"product_name": "Tea", "sku": "T-1", "quantity": 1, "unit_price": "4.50"}]
    _, answers = send(
        api,
        order_line("P-1", customer, status="paid", lines=two, shipping="3.00", source="google"),
        order_line("P-2", customer, status="pending", lines=SCARF),
    )
    assert [a["result"] for a in answers[:2]] == ["created", "created"]
    paid = Order.objects.get(number="P-1")
    assert (paid.status, paid.total, paid.subtotal, paid.shipping, paid.source) == (
        "paid",
        Decimal("27.50"),
        Decimal("24.50"),
        Decimal("3.00"),
        "google",
    )
    assert paid.billing_address["city"] == "Lyon" and paid.shipping_address["name"] == "Ada L"
    assert paid.refunded_amount == Decimal("0.00")
    lines = list(
        OrderLine.objects.filter(order=paid)
        .order_by("pk")
        .values_list("product_name", "sku", "quantity", "unit_price", "line_total")
    )
    assert lines == [
        ("Mug", "", 2, Decimal("10.00"), Decimal("20.00")),
        ("Tea", "T-1", 1, Decimal("4.50"), Decimal("4.50")),
    ]
    bought = CustomerProduct.objects.filter(customer=customer)
    assert sorted(bought.values_list("product__name", flat=True)) == ["Mug", "Tea"]
    # A pending order bought nothing yet; paying it by a later import records its product.
    _, answers = send(api, order_line("P-2", customer, status="paid", lines=SCARF))
    assert answers[0]["result"] == "updated"
    assert sorted(bought.values_list("product__name", flat=True)) == ["Mug", "Scarf", "Tea"]
    out = StringIO()
    call_command("rebuild_customer_stats", "--check", stdout=out, stderr=StringIO())
    assert "0 had drifted" in out.getvalue()
    assert "0 products bought (CustomerProduct) were missing" in out.getvalue()


def test_a_body_that_fails_midway_stops_the_import_after_the_batches_it_applied(api, monkeypatch):
    """An error while reading the body (the connection dropped) stops the import there: the
    batches answered are stored, the orders read since are not."""
    customer = CustomerFactory()
    read = imports._read_lines

    def dropped(request):
        for number, raw in read(request):
            if number > imports.BATCH + 3:
                raise OSError("connection reset by peer")
            yield number, raw

    monkeypatch.setattr(imports, "_read_lines", dropped)
    _, answers = send(api, *(order_line(f"F-{n}", customer) for n in range(imports.BATCH + 9)))
    assert [a["result"] for a in answers[:-1]] == ["created"] * imports.BATCH
    assert answers[-1]["error"] == "server-error"
    assert Order.objects.count() == imports.BATCH
    assert_no_drift()


def test_an_erased_customer_gets_no_imported_order(api):
    """An erased customer is no one any more (privacy/): the import refuses its orders as it
    refuses an unknown customer's, and writes nothing for them."""
    from privacy.services import customers_erase

    customer, other = CustomerFactory(), CustomerFactory()
    customers_erase(customers=Customer.objects.filter(pk=customer.pk))
    _, answers = send(
        api, order_line("E-1", customer, status="paid"), order_line("E-2", other, status="paid")
    )
    assert answers[0]["result"] == "error"
    assert answers[0]["errors"][0]["code"] == "unknown-customer"
    assert answers[1]["result"] == "created"
    assert not Order.objects.filter(number="E-1").exists()
    assert_no_drift()


def _readers():
    return [t for t in threading.enumerate() if t.name == "import-reader"]


def test_the_next_lines_are_read_and_checked_while_a_batch_is_applied(api, monkeypatch):
    """A thread reads and checks up to AHEAD lines beyond the batch being applied while the
    batch's statements run (so the next batch's parsing overlaps them), and no more: the
    body is not read whole. While the import runs Python, the thread waits (it would hold
    the GIL the import needs). Every answer still comes in the file's order."""
    monkeypatch.setattr(imports, "BATCH", 10)
    monkeypatch.setattr(imports, "AHEAD", 10)
    monkeypatch.setattr(imports, "READ_BYTES", 512)
    customer = CustomerFactory()
    read, checked = imports._read_lines, []

    def reading(request):
        for number, raw in read(request):
            checked.append(number)
            yield number, raw

    monkeypatch.setattr(imports, "_read_lines", reading)
    apply, seen = imports.orders_import, []

    def slow_statement(execute, sql, params, many, context):
        # The first statement of the first batch lasts until the thread has filled its
        # AHEAD lines (it stops there).
        for _ in range(0 if seen else 500):
            if len(checked) >= 10 + imports.AHEAD:
                break
            time.sleep(0.01)
        if not seen:
            seen.append(max(checked))
        return execute(sql, params, many, context)

    def applying(items):
        if not seen:
            # Python, between statements: the thread does not read on (one line at most,
            # the one it may have started).
            before = max(checked)
            time.sleep(0.2)
            assert max(checked) <= before + 1
        with connection.execute_wrapper(slow_statement):
            return apply(items)

    monkeypatch.setattr(imports, "orders_import", applying)
    lines = [order_line(f"A-{n}", customer) for n in range(45)]
    lines.insert(17, {"type": "nothing"})
    _, answers = send(api, *lines)
    assert [a["line"] for a in answers[:-1]] == list(range(1, 47))
    assert answers[17]["result"] == "error"
    assert answers[-1]["summary"]["created"] == 45
    # During the first batch's statements: the next 10 lines checked, and one more waiting
    # for room; not the whole body.
    assert 10 + imports.AHEAD <= seen[0] <= 10 + imports.AHEAD + 1
    assert not _readers()


def test_the_reading_thread_stops_with_the_import(api, monkeypatch):
    """When applying a batch fails, the answer says where it stopped and the thread reading
    ahead is stopped and waited for, though the body was not read to its end."""
    monkeypatch.setattr(imports, "BATCH", 5)
    monkeypatch.setattr(imports, "AHEAD", 5)
    monkeypatch.setattr(imports, "READ_BYTES", 512)
    customer = CustomerFactory()
    apply = imports.orders_import
    calls = []

    def failing(items):
        calls.append(len(items))
        if len(calls) == 2:
            raise RuntimeError("the disk is full")
        return apply(items)

    monkeypatch.setattr(imports, "orders_import", failing)
    response = api.post(
        "/import",
        raw="".join(json.dumps(order_line(f"B-{n}", customer)) + "\n" for n in range(60)).encode(),
        content_type=NDJSON,
    )
    answers = [json.loads(x) for x in b"".join(response.streaming_content).splitlines()]
    assert [a["result"] for a in answers[:-1]] == ["created"] * 5
    assert answers[-1]["error"] == "server-error"
    assert Order.objects.count() == 5
    assert len(response.wsgi_request.environ["wsgi.input"]) > 0  # the rest was never read
    assert not _readers()
    assert_no_drift()


def test_orders_sent_without_a_source_take_their_launch_in_one_query_per_batch(api):
    """An order without source, medium and campaign takes the customer's last launch with a
    source within the window before it, as POST /orders does; the import finds them for the
    whole batch at once on PostgreSQL (a migrated history rarely has sources: one query per
    order was most of such an import's database time)."""
    from datetime import datetime, timedelta

    from django.test.utils import CaptureQueriesContext

    from storefront.services import launch_record

    placed = datetime.fromisoformat("2026-01-05T10:00:00+01:00")
    ada, bob, cy = CustomerFactory(), CustomerFactory(), CustomerFactory()
    launch_record(
        platform="web",
        customer=ada,
        occurred_at=placed - timedelta(days=2),
        source="google",
        medium="cpc",
        campaign="winter",
    )
    # Later, without a source (typing the address): the ad keeps the order.
    launch_record(platform="web", customer=ada, occurred_at=placed - timedelta(days=1))
    launch_record(
        platform="web", customer=ada, occurred_at=placed + timedelta(hours=1), source="after"
    )
    launch_record(
        platform="ios", customer=bob, occurred_at=placed - timedelta(days=40), source="too-old"
    )
    _, answers = send(
        api,
        order_line("S-1", ada),
        order_line("S-2", bob),
        order_line("S-3", cy),
        order_line("S-4", ada, source="newsletter"),
        order_line("S-5", ada, placed_at="2025-12-01T10:00:00+01:00"),
    )
    assert [a["result"] for a in answers[:5]] == ["created"] * 5
    got = dict(Order.objects.values_list("number", "source"))
    assert got == {"S-1": "google", "S-2": "", "S-3": "", "S-4": "newsletter", "S-5": ""}
    assert Order.objects.get(number="S-1").campaign == "winter"

    def queries(prefix, count):
        customers = CustomerFactory.create_batch(count)
        for customer in customers:
            launch_record(platform="web", customer=customer, occurred_at=placed, source="ad")
        with CaptureQueriesContext(connection) as captured:
            _, answers = send(
                api, *(order_line(f"{prefix}-{i}", c) for i, c in enumerate(customers))
            )
        assert {a["result"] for a in answers[:count]} == {"created"}
        return len(captured)

    few, many = queries("Q", 2), queries("R", 12)
    if connection.vendor == "postgresql":
        assert few == many
    assert set(Order.objects.filter(number__startswith="R").values_list("source", flat=True)) == {
        "ad"
    }
