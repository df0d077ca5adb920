"""What an API call costs and skips: the back office's middleware, savepoints, round trips
(storefront/middleware.py, orders/services.py, storefront/ratelimit.py)."""

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from clients.services import address_create
from orders.models import Order
from orders.services import OrderConflict, order_place
from tests.factories import CustomerFactory
from tests.storefront.test_orders import LINES, order_body, post
from tests.storefront.test_pipeline import _cache_settings, _redis_url

pytestmark = pytest.mark.django_db


def _statements(captured) -> list[str]:
    return [q["sql"] for q in captured.captured_queries]


def test_an_api_call_with_a_back_office_session_reads_no_session_or_user(api, staff_client):
    """A browser logged in to the back office sends its session cookie with an API call:
    the call is authenticated by its key alone, so neither the session nor the user is
    read (the back office's middleware does not run for API operations)."""
    api.client.cookies = staff_client.cookies
    customer = CustomerFactory()
    with CaptureQueriesContext(connection) as captured:
        response = post(api, "/orders", order_body(customer), headers={"Idempotency-Key": "a"})
    assert response.status_code == 201, response.content
    touched = [s for s in _statements(captured) if "django_session" in s or "auth_user" in s]
    assert touched == []
    assert "Set-Cookie" not in response or not response.cookies


def test_api_operations_keep_the_language_and_security_headers(api):
    response = api.get("/orders", headers={"Accept-Language": "fr"})
    assert response.status_code == 200
    assert response["Content-Language"] == "fr"
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert int(response["Content-Length"]) == len(response.content)
    assert response["Cache-Control"] == "no-store, private"


def test_the_docs_page_still_goes_through_the_whole_chain(client):
    response = client.get("/api/v1/docs")
    assert response.status_code == 200
    assert "Content-Security-Policy" in response


def test_an_unknown_api_path_is_still_a_problem(api):
    response = api.get("/no-such-thing")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/problem+json")


def test_order_creation_and_payment_take_no_savepoint(api, settings):
    """One transaction per call and no savepoint in it: creation is 10 statements (BEGIN,
    the key's lookup, addresses, launch, the last push click (notifications.attribution),
    order, lines, audit, the key's record, COMMIT);
    payment 10 (the status changed from pending, which locks the order, the statistics, the
    products bought twice, the audit, the lines shown). Here the test's own transaction turns
    the call's BEGIN and COMMIT into one savepoint: that one and no other. (Rate limits
    counted in a cache, as on Redis.)"""
    _cache_settings(settings, {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"})
    customer = CustomerFactory()
    assert api.get("/orders").status_code == 200  # the key read, then kept by this process
    with CaptureQueriesContext(connection) as created:
        response = post(api, "/orders", order_body(customer), headers={"Idempotency-Key": "c"})
    assert response.status_code == 201, response.content
    with CaptureQueriesContext(connection) as paid:
        response = post(api, "/orders/1001/pay", headers={"Idempotency-Key": "p"})
    assert response.status_code == 200, response.content
    for captured in (created, paid):
        savepoints = [s for s in _statements(captured) if "SAVEPOINT" in s.upper()]
        assert len(savepoints) == 2, savepoints
        assert savepoints[0].startswith("SAVEPOINT") and savepoints[1].startswith("RELEASE")
    if connection.vendor == "postgresql":  # SQLite's BEGIN is not a captured statement
        assert len(created.captured_queries) == 10, _statements(created)
        assert len(paid.captured_queries) == 10, _statements(paid)


def test_a_refused_order_leaves_the_callers_transaction_usable():
    """order_create and order_set_status take no savepoint, but a refusal (raised before
    anything is written) does not spoil a transaction the caller goes on with."""
    customer = CustomerFactory()
    address_create(customer=customer, make_default=True, **_ADDRESS)
    with transaction.atomic():
        order_place(customer=customer, number="A1", lines=_lines())
        with pytest.raises(OrderConflict):
            order_place(customer=customer, number="A1", lines=_lines())
        with pytest.raises(Order.DoesNotExist):
            from orders.services import order_pay

            order_pay(order=Order(number="nope"))
        order_place(customer=customer, number="A2", lines=_lines())
    orders = Order.objects.filter(customer=customer).order_by("number")
    assert [o.number for o in orders] == ["A1", "A2"]
    assert orders[0].billing_address["city"] == "Lyon"
    assert orders[0].lines.count() == 3


def test_a_database_error_after_a_write_rolls_the_callers_transaction_back(monkeypatch):
    from django.db import DatabaseError

    from orders import services

    customer = CustomerFactory()

    def broken(order, action, changes):
        raise DatabaseError("disk full")

    monkeypatch.setattr(services, "_audit", broken)
    with pytest.raises(DatabaseError), transaction.atomic():
        order_place(customer=customer, number="B1", lines=_lines())
        pytest.fail("the order's failure must end the caller's transaction")
    assert not Order.objects.filter(number="B1").exists()


_ADDRESS = {
    "name": "Ada",
    "line1": "1 rue Neuve",
    "postal_code": "69001",
    "city": "Lyon",
    "country": "FR",
}


def _lines():
    from orders.services import LineInput

    return [
        LineInput(
            product_name=li["product_name"],
            sku=li.get("sku", ""),
            quantity=li["quantity"],
            unit_price=str(li["unit_price"]),
        )
        for li in LINES
    ]


def test_the_redis_rate_limit_key_expires_with_its_window(settings):
    import redis

    from storefront.auth import Caller
    from storefront.ratelimit import rate_limit_hit

    url = _redis_url()
    if url is None:
        pytest.skip("no Redis at REDIS_URL or 127.0.0.1:6379")
    _cache_settings(
        settings, {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url}
    )
    settings.STOREFRONT_API_RATE_LIMIT = 2
    settings.STOREFRONT_API_RATE_WINDOW = 60
    server = redis.Redis.from_url(url)
    rate_limit_hit(Caller(principal="key:7"), now=6000.0)
    prefix = settings.CACHES["api"]["KEY_PREFIX"]
    (key,) = server.keys(f"{prefix}:*ratelimit:key:7:100")
    assert 0 < server.ttl(key) <= 61
    # A Redis restarted (its scripts forgotten) is given the counting script again.
    server.script_flush()
    rate_limit_hit(Caller(principal="key:7"), now=6001.0)
    with pytest.raises(Exception, match="More than 2 calls"):
        rate_limit_hit(Caller(principal="key:7"), now=6002.0)
    assert 0 < server.ttl(key) <= 61
    server.delete(key)
