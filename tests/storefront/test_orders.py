"""The order endpoints through HTTP: create, pay, fulfil, cancel, refund, read, list."""

import json
import re
from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from clients.models import Customer
from clients.services import address_create
from orders.models import Order, OrderStatus
from storefront.services import launch_record
from tests.factories import CustomerFactory
from tests.storefront.conftest import Api, assert_problem

pytestmark = pytest.mark.django_db

LINES = [
    {"product_name": "Merino scarf", "sku": "SCARF", "quantity": 1, "unit_price": "39.90"},
    {"product_name": "Beanie", "sku": "BEANIE", "quantity": 2, "unit_price": 24.5},
    {"product_name": "Socks", "quantity": 1, "unit_price": "12.90"},
]


def order_body(customer, number="1001", **extra):
    return {"number": number, "customer_id": customer.pk, "lines": LINES, **extra}


def post(api, path, body=None, **kw):
    """A POST as a shop's platform sends it: JSON, or no body at all for the status calls."""
    if body is None:
        return api.post(path, raw=b"", **kw)
    return api.post(path, body, **kw)


def create(api, customer, number="1001", **extra):
    response = post(api, "/orders", order_body(customer, number, **extra))
    assert response.status_code == 201, response.content
    return response.json()


def stats(customer) -> tuple:
    customer = Customer.objects.get(pk=customer.pk)
    return (customer.orders_count, customer.total_spent, customer.last_source)


def assert_no_drift():
    out = StringIO()
    call_command("rebuild_customer_stats", "--check", stdout=out, stderr=StringIO())
    assert ", 0 had drifted" in out.getvalue()


def test_an_order_through_its_whole_life(api):
    customer = CustomerFactory()
    address_create(
        customer=customer,
        name="Ada",
        line1="1 rue",
        postal_code="75001",
        city="Paris",
        country="FR",
    )
    response = post(
        api, "/orders", order_body(customer, shipping="4.90", total="106.70", source="google")
    )
    assert response.status_code == 201, response.content
    assert response["Location"] == "/api/v1/orders/1001"
    order = response.json()
    assert order["status"] == "pending" and order["total"] == "106.70"
    assert [line["line_total"] for line in order["lines"]] == ["39.90", "49.00", "12.90"]
    assert stats(customer) == (0, Decimal("0.00"), "")

    paid = post(api, "/orders/1001/pay")
    assert paid.status_code == 200 and paid.json()["status"] == "paid"
    assert stats(customer) == (1, Decimal("106.70"), "google")
    assert post(api, "/orders/1001/fulfil").json()["status"] == "fulfilled"
    refund = post(api, "/orders/1001/refunds", {"amount": "6.70"})
    assert refund.json()["refunded_amount"] == "6.70"
    assert stats(customer)[:2] == (1, Decimal("100.00"))
    last = post(api, "/orders/1001/refunds", {"amount": 100})
    assert last.json()["status"] == "refunded"
    assert stats(customer)[:2] == (1, Decimal("0.00"))

    read = api.get("/orders/1001").json()
    assert read["status"] == "refunded" and len(read["lines"]) == 3
    assert Order.objects.get(number="1001").billing_address["city"] == "Paris"
    assert_no_drift()


def test_a_created_or_changed_order_is_answered_as_a_read_shows_it(api):
    """Creation and status changes answer with the order and lines written or read with SQL
    written once, not the ORM: the same document as GET (amounts and dates converted as the
    ORM converts them, SQLite included)."""
    customer = CustomerFactory()
    created = post(api, "/orders", order_body(customer, shipping="4.90"))
    assert created.status_code == 201, created.content
    assert created.json() == api.get("/orders/1001").json()
    for action in ("pay", "fulfil"):
        changed = post(api, f"/orders/1001/{action}")
        assert changed.status_code == 200, changed.content
        assert changed.json() == api.get("/orders/1001").json()


def test_an_order_without_a_source_takes_the_last_launch_with_one(api):
    customer = CustomerFactory()
    now = timezone.now()
    for minutes, source in ((30, "google"), (20, "newsletter"), (10, "")):
        launch_record(
            customer=customer,
            occurred_at=now - timedelta(minutes=minutes),
            platform="ios",
            source=source,
            medium="email" if source == "newsletter" else "",
            campaign="weekly" if source == "newsletter" else "",
        )
    order = create(api, customer, "A-1")
    assert (order["source"], order["medium"], order["campaign"]) == (
        "newsletter",
        "email",
        "weekly",
    )
    own = create(api, customer, "A-2", source="facebook", medium="social")
    assert (own["source"], own["medium"]) == ("facebook", "social")
    post(api, "/orders/A-1/pay")
    assert stats(customer)[2] == "newsletter"


@pytest.mark.parametrize(
    ("status", "action", "body"),
    [
        ("pending", "fulfil", None),
        ("pending", "refunds", {"amount": "1.00"}),
        ("paid", "pay", None),
        ("paid", "cancel", None),
        ("fulfilled", "pay", None),
        ("fulfilled", "fulfil", None),
        ("fulfilled", "cancel", None),
        ("cancelled", "pay", None),
        ("cancelled", "fulfil", None),
        ("cancelled", "cancel", None),
        ("cancelled", "refunds", {"amount": "1.00"}),
        ("refunded", "pay", None),
        ("refunded", "fulfil", None),
        ("refunded", "cancel", None),
        ("refunded", "refunds", {"amount": "1.00"}),
    ],
)
def test_every_invalid_transition_is_a_409_that_changes_nothing(api, status, action, body):
    customer = CustomerFactory()
    create(api, customer, "T-1")
    steps = {
        "pending": [],
        "paid": ["pay"],
        "fulfilled": ["pay", "fulfil"],
        "cancelled": ["cancel"],
        "refunded": ["pay", "refunds"],
    }[status]
    for step in steps:
        response = post(
            api, f"/orders/T-1/{step}", {"amount": "101.80"} if step == "refunds" else None
        )
        assert response.status_code == 200, response.content
    before = (Order.objects.values("status", "refunded_amount").get(number="T-1"), stats(customer))
    document = assert_problem(post(api, f"/orders/T-1/{action}", body), 409, "invalid-transition")
    assert status in document["detail"]
    after = (Order.objects.values("status", "refunded_amount").get(number="T-1"), stats(customer))
    assert after == before


def test_refunding_more_than_is_left_is_refused(api):
    customer = CustomerFactory()
    create(api, customer, "R-1")
    post(api, "/orders/R-1/pay")
    assert post(api, "/orders/R-1/refunds", {"amount": "100.00"}).status_code == 200
    document = assert_problem(
        post(api, "/orders/R-1/refunds", {"amount": "1.81"}), 409, "refund-exceeds-paid"
    )
    assert document["errors"][0]["field"] == "amount" and "1.80" in document["detail"]
    assert stats(customer)[:2] == (1, Decimal("1.80"))
    for amount in ("0", "-1", "1.001", "abc", None):
        assert_problem(post(api, "/orders/R-1/refunds", {"amount": amount}), 422, "validation")
    assert_problem(post(api, "/orders/R-1/refunds", {"amount": "1", "why": "x"}), 422, "validation")


def test_order_numbers_are_compared_as_written(api):
    # As the schema says: the shop's numbers are its own, "A-1" and "a-1" two orders.
    customer = CustomerFactory()
    create(api, customer, "A-1")
    create(api, customer, "a-1")
    post(api, "/orders/a-1/pay")
    assert api.get("/orders/A-1").json()["status"] == "pending"
    assert api.get("/orders/a-1").json()["status"] == "paid"
    assert_problem(api.get("/orders/A-1x"), 404, "not-found")


def test_an_order_number_is_unique(api):
    customer = CustomerFactory()
    create(api, customer, "U-1")
    document = assert_problem(
        post(api, "/orders", order_body(CustomerFactory(), "U-1")), 409, "order-number-taken"
    )
    assert document["errors"] == [{"field": "number", "message": document["detail"]}]
    assert Order.objects.filter(number="U-1").count() == 1


@pytest.mark.parametrize(
    ("change", "fields"),
    [
        ({"lines": []}, {"lines"}),
        (
            {"lines": [{"product_name": "x", "quantity": 0, "unit_price": "1"}]},
            {"lines.0.quantity"},
        ),
        (
            {"lines": [{"product_name": "", "quantity": 1, "unit_price": "1"}]},
            {"lines.0.product_name"},
        ),
        (
            {"lines": [{"product_name": "x", "quantity": 1, "unit_price": "1e20"}]},
            {"lines.0.unit_price"},
        ),
        (
            {"lines": [{"product_name": "x", "quantity": 1, "unit_price": "-1"}]},
            {"lines.0.unit_price"},
        ),
        ({"currency": "USD"}, {"currency"}),
        ({"currency": "EURO"}, {"currency"}),
        ({"total": "1.00"}, {"total"}),
        ({"discount": "1000.00"}, {"discount"}),
        ({"number": "has space"}, {"number"}),
        ({"number": "x" * 40}, {"number"}),
        ({"placed_at": "2026-01-01T10:00:00"}, {"placed_at"}),
        ({"placed_at": "2999-01-01T10:00:00Z"}, {"placed_at"}),
        ({"source": "a\x00b"}, {"source"}),
        ({"colour": "red"}, {"colour"}),
        ({"customer_id": 10**12}, {"customer_id"}),
        ({"customer_id": None, "customer_external_id": "nobody"}, {"customer_external_id"}),
        ({"customer_external_id": "also"}, {"customer_id"}),
        ({"shipping": "x", "tax": -1}, {"shipping", "tax"}),
        # The schema's types, not what they could be read as: an integer is a JSON number.
        ({"customer_id": "1"}, {"customer_id"}),
        ({"customer_id": True}, {"customer_id"}),
        (
            {"lines": [{"product_name": "x", "quantity": "2", "unit_price": "1"}]},
            {"lines.0.quantity"},
        ),
        (
            {"lines": [{"product_name": "x", "quantity": 1.5, "unit_price": "1"}]},
            {"lines.0.quantity"},
        ),
    ],
)
def test_invalid_orders_are_422_with_the_fields_and_write_nothing(api, change, fields):
    customer = CustomerFactory()
    body = {**order_body(customer, "V-1"), **change}
    document = assert_problem(post(api, "/orders", body), 422, "validation")
    assert {error["field"] for error in document["errors"]} >= fields, document
    assert not Order.objects.exists()


def test_a_customer_may_be_given_by_the_shops_id(api):
    customer = CustomerFactory(external_id="shop-42")
    body = {"number": "X-1", "customer_external_id": "shop-42", "lines": LINES}
    assert post(api, "/orders", body).json()["customer_id"] == customer.pk


def test_scopes_and_keys(api_as):
    customer = CustomerFactory()
    reader, customers_only = api_as("read"), api_as("customers:write")
    assert_problem(post(reader, "/orders", order_body(customer)), 403, "forbidden")
    assert_problem(post(customers_only, "/orders", order_body(customer)), 403, "forbidden")
    writer = api_as("orders:write")
    create(writer, customer, "K-1")
    assert_problem(post(reader, "/orders/K-1/pay"), 403, "forbidden")
    assert reader.get("/orders/K-1").status_code == 200
    assert_problem(writer.get("/orders/K-1"), 403, "forbidden")
    assert_problem(post(Api(None), "/orders/K-1/pay"), 401, "unauthenticated")
    assert_problem(post(Api("bo_abcdefgh_wrong"), "/orders/K-1/pay"), 401, "unauthenticated")
    assert Order.objects.get(number="K-1").status == OrderStatus.PENDING


def test_unknown_orders_are_404_problems(api):
    assert_problem(api.get("/orders/NOPE"), 404, "not-found")
    assert_problem(post(api, "/orders/NOPE/pay"), 404, "not-found")
    assert_problem(post(api, "/orders/NOPE/refunds", {"amount": "1"}), 404, "not-found")
    # Found by the property test: a NUL byte in the path reached PostgreSQL (500).
    for number in ("%00", "a%00b", "x" * 40, "%C3%A9"):
        assert_problem(post(api, f"/orders/{number}/pay"), 404, "not-found")
        assert_problem(api.get(f"/orders/{number}"), 404, "not-found")


def test_idempotent_replay_and_conflict(api):
    customer = CustomerFactory()
    headers = {"Idempotency-Key": "create-I-1"}
    first = post(api, "/orders", order_body(customer, "I-1"), headers=headers)
    again = post(api, "/orders", order_body(customer, "I-1"), headers=headers)
    assert first.status_code == again.status_code == 201
    assert again["Idempotent-Replayed"] == "true" and again.content == first.content
    assert_problem(
        post(api, "/orders", order_body(customer, "I-2"), headers=headers),
        422,
        "idempotency-key-reused",
    )
    pay = {"Idempotency-Key": "pay-I-1"}
    assert post(api, "/orders/I-1/pay", headers=pay).status_code == 200
    replay = post(api, "/orders/I-1/pay", headers=pay)
    assert replay.status_code == 200 and replay["Idempotent-Replayed"] == "true"
    refund = {"Idempotency-Key": "refund-1"}
    for _ in range(3):
        assert post(api, "/orders/I-1/refunds", {"amount": "10"}, headers=refund).status_code == 200
    assert stats(customer)[:2] == (1, Decimal("91.80"))  # paid once, refunded once
    assert Order.objects.filter(number__startswith="I-").count() == 1


def test_a_failed_call_leaves_its_key_free(api):
    customer = CustomerFactory()
    create(api, customer, "F-1")
    headers = {"Idempotency-Key": "fulfil-F-1"}
    assert_problem(post(api, "/orders/F-1/fulfil", headers=headers), 409, "invalid-transition")
    post(api, "/orders/F-1/pay")
    assert post(api, "/orders/F-1/fulfil", headers=headers).status_code == 200


def test_bodies_over_the_limit_are_413(api, settings):
    settings.STOREFRONT_API_MAX_BODY = 2000
    customer = CustomerFactory()
    lines = [{"product_name": "x" * 100, "quantity": 1, "unit_price": "1"}] * 30
    response = post(api, "/orders", {**order_body(customer), "lines": lines})
    assert_problem(response, 413, "payload-too-large")
    assert not Order.objects.exists()


def test_the_list_pages_with_a_cursor_and_filters(api):
    alice, bob = CustomerFactory(), CustomerFactory()
    for n in range(5):
        create(api, alice if n % 2 else bob, f"L-{n}")
    post(api, "/orders/L-1/pay")
    seen, cursor = [], None
    while True:
        page = api.get("/orders?limit=2" + (f"&cursor={cursor}" if cursor else "")).json()
        seen += [order["number"] for order in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"L-{n}" for n in range(5)]
    mine = api.get(f"/orders?customer_id={alice.pk}").json()["data"]
    assert [o["number"] for o in mine] == ["L-1", "L-3"]
    assert [o["number"] for o in api.get("/orders?status=paid").json()["data"]] == ["L-1"]
    assert_problem(api.get("/orders?cursor=garbage"), 422, "validation")
    assert_problem(api.get("/orders?status=lost"), 422, "validation")
    assert_problem(api.get("/orders?sort=number"), 422, "validation")


def test_the_schema_documents_the_order_endpoints(client):
    schema = client.get("/api/v1/openapi.json").json()
    paths = schema["paths"]
    for path in ("/api/v1/orders", "/api/v1/orders/{number}/pay", "/api/v1/import"):
        assert path in paths, sorted(paths)
    body = paths["/api/v1/import"]["post"]["requestBody"]["content"]["application/x-ndjson"]
    assert [s["title"] for s in body["schema"]["oneOf"]] == ["CustomerImport", "OrderImport"]
    # Every reference resolves, so a client generated from the schema can be built.
    refs = set(re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(schema)))
    assert refs <= set(schema["components"]["schemas"])


def test_order_changes_leave_an_audit_trail_on_the_client_page(api, viewer_client):
    """Placed and paid by the customer, fulfilled and refunded by the shop: each change is an
    audit entry, shown in the client page's change history with who made it; a refused
    change leaves none."""
    from clients.models import AuditEntry

    customer = CustomerFactory()
    create(api, customer, "A-1")
    post(api, "/orders/A-1/pay")
    post(api, "/orders/A-1/fulfil")
    post(api, "/orders/A-1/refunds", {"amount": "10.00"})
    create(api, customer, "A-2")
    post(api, "/orders/A-2/cancel")
    assert post(api, "/orders/A-2/pay").status_code == 409  # refused: no entry
    entries = list(
        AuditEntry.objects.filter(customer=customer)
        .order_by("pk")
        .values_list("action", "origin", "changes")
    )
    assert [(action, origin) for action, origin, _ in entries] == [
        ("order_place", "customer"),
        ("order_pay", "customer"),
        ("order_fulfil", "shop"),
        ("order_refund", "shop"),
        ("order_place", "customer"),
        ("order_cancel", "shop"),
    ]
    assert entries[1][2] == {"order": "A-1", "status": ["pending", "paid"]}
    assert entries[3][2] == {"order": "A-1", "refunded_amount": ["0.00", "10.00"]}
    text = viewer_client.get(f"/clients/{customer.pk}/").text
    for label in ("Order placed", "Order paid", "Order fulfilled", "Order refunded"):
        assert label in text
    assert text.count("by the shop") == 3 and text.count("by the customer") == 3
    viewer_client.cookies.load({"django_language": "fr"})
    french = viewer_client.get(f"/clients/{customer.pk}/", headers={"accept-language": "fr"})
    assert "Commande payée" in french.text and "par la boutique" in french.text
