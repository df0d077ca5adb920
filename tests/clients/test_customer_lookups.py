"""Customers are found by email and by the shop's id through their unique indexes.

`email__iexact` compiles to UPPER(email) = UPPER(%s) on PostgreSQL, which the index on
lower(email) does not serve: every sign-up, API lookup by email and import line scanned the
whole table (1.5 s at a million customers). The index on external_id covers the non-empty
ones only, which a prepared statement's generic plan cannot prove from a parameter."""

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from clients.models import Customer
from clients.selectors import customers_with_email
from tests.factories import CustomerFactory
from tests.storefront.conftest import Api, make_key

pytestmark = pytest.mark.django_db


def test_the_email_matches_whatever_its_case():
    ada = CustomerFactory(email="Ada.Lovelace@Example.com")
    CustomerFactory(email="ada.lovelace@example.org")
    assert list(customers_with_email("ada.lovelace@EXAMPLE.COM")) == [ada]
    assert not customers_with_email("ada.lovelace@example.com", Customer.objects.exclude(pk=ada.pk))


def _lookups(run, column: str) -> list[str]:
    """The statements `run` sends that look customers up by `column` (in any form)."""
    with CaptureQueriesContext(connection) as captured:
        run()
    found = []
    for query in captured.captured_queries:
        sql = query["sql"]
        where = sql.split("WHERE", 1)[-1] if "WHERE" in sql else ""
        if 'FROM "clients_customer"' in sql and f'"clients_customer"."{column}"' in where:
            found.append(sql)
    return found


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's plans")
@pytest.mark.parametrize("call", ["sign-up", "lookup", "import"])
def test_every_lookup_by_email_can_use_the_index(call):
    CustomerFactory.create_batch(5)
    api = Api(make_key())
    runs = {
        "sign-up": lambda: api.post("/customers", {"email": "New.Person@example.com"}),
        "lookup": lambda: api.get("/customers?email=New.Person%40EXAMPLE.com"),
        "import": lambda: b"".join(
            api.post(
                "/import",
                raw=json.dumps({"type": "customer", "email": "Other@example.com"}).encode() + b"\n",
                content_type="application/x-ndjson",
            ).streaming_content
        ),
    }
    statements = _lookups(runs[call], "email")
    assert statements, "no lookup by email was seen"
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        for sql in statements:
            cursor.execute("EXPLAIN " + sql)
            plan = "\n".join(row[0] for row in cursor.fetchall())
            assert "customer_email_unique_ci" in plan, (sql, plan)


@pytest.mark.parametrize("call", ["sign-up", "lookup", "order", "import-customer", "import-order"])
def test_every_lookup_by_external_id_says_it_is_not_empty_inline(call):
    """The unique index on external_id covers the non-empty ones only: a statement must say
    `external_id <> ''` as a constant, or a prepared statement's generic plan cannot use
    that index (a scan of the whole table: 222 ms at a million customers against 0.2)."""
    customer = CustomerFactory(external_id="shop-1")
    api = Api(make_key())
    lines = [{"product_name": "Mug", "quantity": 1, "unit_price": "10.00"}]

    def imported(line):
        return b"".join(
            api.post(
                "/import",
                raw=json.dumps(line).encode() + b"\n",
                content_type="application/x-ndjson",
            ).streaming_content
        )

    runs = {
        "sign-up": lambda: api.post("/customers", {"email": "n@example.com", "external_id": "s2"}),
        "lookup": lambda: api.get("/customers?external_id=shop-1"),
        "order": lambda: api.post(
            "/orders", {"number": "X-1", "customer_external_id": "shop-1", "lines": lines}
        ),
        "import-customer": lambda: imported(
            {"type": "customer", "email": "m@example.com", "external_id": "s3"}
        ),
        "import-order": lambda: imported(
            {
                "type": "order",
                "number": "X-2",
                "customer_external_id": "shop-1",
                "placed_at": "2026-01-05T10:00:00Z",
                "lines": lines,
            }
        ),
    }
    statements = _lookups(runs[call], "external_id")
    assert statements, "no lookup by external_id was seen"
    for sql in statements:
        assert """NOT ("clients_customer"."external_id" = '')""" in sql, sql
    assert customer.pk
