"""Customers are found by email through the unique index on lower(email).

`email__iexact` compiles to UPPER(email) = UPPER(%s) on PostgreSQL, which that index does not
serve: every sign-up, API lookup by email and import line scanned the whole table (1.5 s at a
million customers)."""

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


def _email_queries(run) -> list[str]:
    """The statements `run` sends that look customers up by email (in any form)."""
    with CaptureQueriesContext(connection) as captured:
        run()
    found = []
    for query in captured.captured_queries:
        sql = query["sql"]
        where = sql.split("WHERE", 1)[-1] if "WHERE" in sql else ""
        if 'FROM "clients_customer"' in sql and '"clients_customer"."email"' in where:
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
    statements = _email_queries(runs[call])
    assert statements, "no lookup by email was seen"
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        for sql in statements:
            cursor.execute("EXPLAIN " + sql)
            plan = "\n".join(row[0] for row in cursor.fetchall())
            assert "customer_email_unique_ci" in plan, (sql, plan)
