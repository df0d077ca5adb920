"""What every call goes through: keys, problem+json, size and type, idempotency, rate limits,
one transaction per call (storefront/calls.py)."""

import json
import threading

import pytest
from django.db import connection
from django.test import Client

from clients.models import Customer
from storefront.models import ApiKey, IdempotencyRecord, RateWindow
from storefront.services import api_key_revoke
from tests.storefront.conftest import Api, RawConnection, assert_problem, make_key

pytestmark = pytest.mark.django_db

SIGNUP = {"email": "grace@example.com", "first_name": "Grace"}


def test_no_key_unknown_key_revoked_key(api):
    customer_count = Customer.objects.count()
    document = assert_problem(Api(None).post("/customers", SIGNUP), 401, "unauthenticated")
    assert "API key" in document["detail"]
    assert_problem(Api("bo_zzzzzzzz_wrong").post("/customers", SIGNUP), 401, "unauthenticated")
    real = api.key
    assert_problem(Api(real[:-1] + "x").post("/customers", SIGNUP), 401, "unauthenticated")
    api_key_revoke(api_key=ApiKey.objects.get(), actor=None)
    assert_problem(api.post("/customers", SIGNUP), 401, "unauthenticated")
    assert Customer.objects.count() == customer_count


def test_last_used_is_recorded(api):
    assert ApiKey.objects.get().last_used_at is None
    api.get("/customers")
    assert ApiKey.objects.get().last_used_at is not None


def test_unknown_path_and_wrong_method_are_problems(api):
    assert_problem(api.get("/nothing-here"), 404, "not-found")
    response = api.delete("/customers")
    document = assert_problem(response, 405, "method-not-allowed")
    assert "GET" in response["Allow"] and document["status"] == 405


def test_body_over_the_limit_is_413_before_anything_reads_it(api, settings):
    settings.STOREFRONT_API_MAX_BODY = 100
    body = {**SIGNUP, "last_name": "x" * 200}
    document = assert_problem(api.post("/customers", body), 413, "payload-too-large")
    assert document["max_bytes"] == 100
    assert not Customer.objects.exists()


def test_other_media_types_are_415(api):
    response = api.post(
        "/customers", raw=b"email=a@b.c", content_type="application/x-www-form-urlencoded"
    )
    assert_problem(response, 415, "unsupported-media-type")


@pytest.mark.parametrize(
    "raw",
    [b"{", b"\xff\xfe", b'{"email": NaN}', b'{"email": "a@b.c", "email": "d@e.f"}', b"[" * 50000],
)
def test_malformed_json_is_400(api, raw):
    assert_problem(api.post("/customers", raw=raw), 400, "malformed-json")


@pytest.mark.parametrize("raw", [b"[]", b"1", b'"x"', b"null"])
def test_json_that_is_not_an_object_is_a_validation_problem(api, raw):
    assert_problem(api.post("/customers", raw=raw), 422, "validation")


def test_idempotent_replay_returns_the_first_response_without_redoing_the_work(api):
    headers = {"Idempotency-Key": "signup-1"}
    first = api.post("/customers", SIGNUP, headers=headers)
    assert first.status_code == 201
    again = api.post("/customers", SIGNUP, headers=headers)
    assert again.status_code == 201
    assert again.content == first.content
    assert again["Location"] == first["Location"]
    assert again["Idempotent-Replayed"] == "true"
    assert Customer.objects.count() == 1


def test_same_key_different_body_is_422(api):
    headers = {"Idempotency-Key": "signup-2"}
    assert api.post("/customers", SIGNUP, headers=headers).status_code == 201
    other = {**SIGNUP, "email": "other@example.com"}
    assert_problem(api.post("/customers", other, headers=headers), 422, "idempotency-key-reused")
    assert Customer.objects.count() == 1


def test_keys_belong_to_their_api_key(api):
    headers = {"Idempotency-Key": "shared"}
    assert api.post("/customers", SIGNUP, headers=headers).status_code == 201
    other = Api(make_key())
    response = other.post("/customers", {**SIGNUP, "email": "b@example.com"}, headers=headers)
    assert response.status_code == 201


def test_a_failed_call_does_not_use_up_its_key(api):
    headers = {"Idempotency-Key": "fix-and-retry"}
    assert_problem(api.post("/customers", {"email": "bad"}, headers=headers), 422, "validation")
    assert not IdempotencyRecord.objects.exists()
    assert api.post("/customers", SIGNUP, headers=headers).status_code == 201


def test_idempotency_costs_one_lookup_and_one_insert_in_the_calls_transaction(api):
    """No reservation committed apart: a new key is one SELECT and one INSERT, both inside
    the call's transaction; a replay is the SELECT alone."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    headers = {"Idempotency-Key": "cheap"}
    with CaptureQueriesContext(connection) as first:
        assert api.post("/customers", SIGNUP, headers=headers).status_code == 201
    table = IdempotencyRecord._meta.db_table
    touching = [q["sql"] for q in first.captured_queries if table in q["sql"]]
    assert len(touching) == 2, touching
    assert touching[0].startswith("SELECT") and touching[1].startswith("INSERT")
    with CaptureQueriesContext(connection) as replay:
        assert api.post("/customers", SIGNUP, headers=headers)["Idempotent-Replayed"] == "true"
    touching = [q["sql"] for q in replay.captured_queries if table in q["sql"]]
    assert len(touching) == 1 and touching[0].startswith("SELECT"), touching
    assert not any('INSERT INTO "clients_customer"' in q["sql"] for q in replay.captured_queries)
    assert Customer.objects.count() == 1


def test_calls_without_a_key_write_no_idempotency_record(api):
    assert api.post("/customers", SIGNUP).status_code == 201
    assert not IdempotencyRecord.objects.exists()


def test_a_call_that_lost_the_race_for_its_key_answers_the_first_response(api, monkeypatch):
    """The first use committed between this call's lookup and its insert (another worker):
    this call's work is rolled back and it answers the first response."""
    import storefront.calls
    from storefront.idempotency import idempotency_lookup

    headers = {"Idempotency-Key": "raced"}
    first = api.post("/customers", SIGNUP, headers=headers)
    assert first.status_code == 201
    calls = []

    def lookup_that_misses_once(**found):
        calls.append(found)
        return None if len(calls) == 1 else idempotency_lookup(**found)

    monkeypatch.setattr(storefront.calls, "idempotency_lookup", lookup_that_misses_once)
    monkeypatch.setattr(
        storefront.idempotency, "idempotency_lookup", lookup_that_misses_once, raising=True
    )
    other = {**SIGNUP, "email": "other@example.com"}
    second = api.post("/customers", other, headers=headers)
    # Another body with the key: refused, and its customer was not created.
    assert_problem(second, 422, "idempotency-key-reused")
    assert not Customer.objects.filter(email="other@example.com").exists()
    calls.clear()
    again = api.post("/customers", SIGNUP, headers=headers)
    # The same body: the sign-up fails (the email is taken), the key is then found: replay.
    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"
    assert again.content == first.content
    assert Customer.objects.count() == 1


def test_expired_keys_are_forgotten(api, settings):
    from datetime import timedelta

    from django.utils import timezone

    headers = {"Idempotency-Key": "old"}
    assert api.post("/customers", SIGNUP, headers=headers).status_code == 201
    IdempotencyRecord.objects.update(
        created_at=timezone.now() - timedelta(seconds=settings.STOREFRONT_API_IDEMPOTENCY_TTL + 1)
    )
    other = {**SIGNUP, "email": "new@example.com"}
    assert api.post("/customers", other, headers=headers).status_code == 201


@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9", "tab\there"])
def test_malformed_idempotency_keys_are_400(api, key):
    response = api.post("/customers", SIGNUP, headers={"Idempotency-Key": key})
    assert_problem(response, 400, "bad-request")
    assert not Customer.objects.exists()


def test_rate_limit_per_key_with_retry_after(api, settings):
    settings.STOREFRONT_API_RATE_LIMIT = 3
    settings.STOREFRONT_API_RATE_WINDOW = 3600
    for _ in range(3):
        assert api.get("/customers").status_code == 200
    response = api.get("/customers")
    document = assert_problem(response, 429, "rate-limited")
    assert 1 <= int(response["Retry-After"]) <= 3600
    assert document["limit"] == 3
    # Another key has its own budget.
    assert Api(make_key()).get("/customers").status_code == 200
    assert RateWindow.objects.count() == 2


def test_rate_limit_counts_in_the_database_so_every_worker_shares_it(api, settings):
    """Counted by the database's upsert: another connection (another worker) sees the count."""
    settings.STOREFRONT_API_RATE_LIMIT = 2
    settings.STOREFRONT_API_RATE_WINDOW = 3600
    api.get("/customers")
    api.get("/customers")
    row = RateWindow.objects.get()
    assert row.count == 2
    assert_problem(api.get("/customers"), 429, "rate-limited")


def test_a_crash_is_a_500_problem_and_rolls_back(api, monkeypatch):
    import clients.services

    def explode(**kwargs):
        Customer.objects.create(email="half@example.com", created_at="2026-01-01T00:00Z")
        raise RuntimeError("boom")

    monkeypatch.setattr("storefront.endpoints.customers.customer_sign_up", explode)
    response = api.post("/customers", SIGNUP, headers={"Idempotency-Key": "crash"})
    assert_problem(response, 500, "server-error")
    assert not Customer.objects.filter(email="half@example.com").exists()
    assert not IdempotencyRecord.objects.exists()
    assert clients.services  # the real service is untouched


def test_problem_types_are_described_at_their_uri(api):
    response = Client().get("/api/v1/problems/validation")
    assert response.status_code == 200
    assert response.json()["status"] == 422
    assert_problem(Client().get("/api/v1/problems/nope"), 404, "not-found")


def test_openapi_schema_is_generated_and_public():
    response = Client().get("/api/v1/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.1")
    assert "/api/v1/customers" in schema["paths"]
    assert "ApiKeyAuth" in schema["components"]["securitySchemes"]


def test_docs_page_uses_vendored_assets_only():
    response = Client().get("/api/v1/docs")
    assert response.status_code == 200
    text = response.text
    assert "vendor/swagger-ui/swagger-ui-bundle.js" in text
    assert "http://" not in text and "https://" not in text
    assert "<script>" not in text  # no inline script (CSP)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs concurrent connections")
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_use_of_one_key_does_the_work_once():
    key = make_key()
    results = []
    barrier = threading.Barrier(8)

    def send():
        barrier.wait()
        response = Api(key).post("/customers", SIGNUP, headers={"Idempotency-Key": "race"})
        results.append((response.status_code, response.get("Idempotent-Replayed")))
        connection.close()

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Customer.objects.filter(email="grace@example.com").count() == 1
    # The later ones waited for the first and got its response back.
    assert [status for status, _ in results] == [201] * 8
    assert sorted(str(replayed) for _, replayed in results) == ["None"] + ["true"] * 7


def test_lone_surrogates_and_nul_are_refused_in_every_text_field(api):
    raw = (
        b'{"email": "a\\ud800@example.com", "first_name": "\\udfff", '
        b'"last_name": "x\\u0000y", "external_id": "\\ud83d"}'
    )
    document = assert_problem(api.post("/customers", raw=raw), 422, "validation")
    assert {e["field"] for e in document["errors"]} == {
        "email",
        "first_name",
        "last_name",
        "external_id",
    }
    assert not Customer.objects.exists()


def test_customer_tokens_have_their_own_smaller_limit(settings):
    from notifications.tokens import storefront_token_issue
    from tests.factories import CustomerFactory

    settings.STOREFRONT_API_CUSTOMER_RATE_LIMIT = 2
    settings.STOREFRONT_API_RATE_WINDOW = 3600
    customer = CustomerFactory()
    token = {"X-Customer-Token": storefront_token_issue(customer_id=customer.pk)}
    browser = Api(None)
    for _ in range(2):
        assert browser.post("/launches", {"platform": "web"}, headers=token).status_code == 201
    response = browser.post("/launches", {"platform": "web"}, headers=token)
    assert_problem(response, 429, "rate-limited")
    assert response["Retry-After"]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs concurrent connections")
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_limit_holds_across_connections_as_across_workers(settings):
    """20 calls at once on 20 database connections (as 20 gunicorn workers would make) with a
    limit of 10: exactly 10 pass."""
    settings.STOREFRONT_API_RATE_LIMIT = 10
    settings.STOREFRONT_API_RATE_WINDOW = 3600
    key = make_key()
    results = []
    barrier = threading.Barrier(20)

    def call():
        barrier.wait()
        results.append(Api(key).get("/customers").status_code)
        connection.close()

    threads = [threading.Thread(target=call) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [200] * 10 + [429] * 10


def test_authenticated_responses_are_never_cached(api):
    count = Customer.objects.count()
    response = api.get("/customers")
    assert response["Cache-Control"] == "no-store, private"
    assert api.get("/customers/999999")["Cache-Control"] == "no-store, private"
    assert Customer.objects.count() == count


def test_a_failure_outside_the_endpoint_frees_the_key(api, monkeypatch):
    """Storing the response fails (say the database went away): 500 problem, nothing written,
    and the same key works on the retry."""
    from django.test import Client

    def broken(**kwargs):
        raise RuntimeError("database gone")

    monkeypatch.setattr("storefront.calls.idempotency_record", broken)
    client = Client(raise_request_exception=False)
    response = client.post(
        "/api/v1/customers",
        json.dumps(SIGNUP),
        content_type="application/json",
        headers={**api.headers(None), "Idempotency-Key": "retry-me"},
    )
    assert_problem(response, 500, "server-error")
    assert not Customer.objects.exists() and not IdempotencyRecord.objects.exists()
    monkeypatch.undo()
    assert (
        api.post("/customers", SIGNUP, headers={"Idempotency-Key": "retry-me"}).status_code == 201
    )


def test_keys_are_read_once_per_cache_delay_and_a_revocation_elsewhere_takes_that_long(
    api, settings, monkeypatch
):
    """Another process revokes the key (its row changes, not this process's cache): this
    process refuses it once STOREFRONT_API_KEY_CACHE_SECONDS have passed."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    import storefront.auth

    settings.STOREFRONT_API_KEY_CACHE_SECONDS = 5
    clock = [1000.0]
    monkeypatch.setattr(storefront.auth.time, "monotonic", lambda: clock[0])
    assert api.get("/customers").status_code == 200
    with CaptureQueriesContext(connection) as calls:
        assert api.get("/customers").status_code == 200
    assert not any("storefront_apikey" in q["sql"] for q in calls.captured_queries)
    ApiKey.objects.update(revoked_at=timezone.now())  # by another worker
    clock[0] += 4.9
    assert api.get("/customers").status_code == 200
    clock[0] += 0.2
    assert_problem(api.get("/customers"), 401, "unauthenticated")


def test_without_the_key_cache_a_revocation_elsewhere_is_immediate(api, settings):
    from django.utils import timezone

    settings.STOREFRONT_API_KEY_CACHE_SECONDS = 0
    assert api.get("/customers").status_code == 200
    ApiKey.objects.update(revoked_at=timezone.now())
    assert_problem(api.get("/customers"), 401, "unauthenticated")


def test_a_revocation_in_this_process_is_immediate_despite_the_cache(api, settings):
    settings.STOREFRONT_API_KEY_CACHE_SECONDS = 3600
    assert api.get("/customers").status_code == 200
    api_key_revoke(api_key=ApiKey.objects.get(), actor=None)
    assert_problem(api.get("/customers"), 401, "unauthenticated")


def _cache_settings(settings, backend: dict) -> None:
    import uuid

    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "api": {**backend, "KEY_PREFIX": f"test-{uuid.uuid4().hex}"},
    }
    settings.STOREFRONT_API_RATE_LIMIT_CACHE = "api"


def test_rate_limit_in_a_cache_writes_nothing_to_the_database(api, settings):
    _cache_settings(settings, {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"})
    settings.STOREFRONT_API_RATE_LIMIT = 3
    settings.STOREFRONT_API_RATE_WINDOW = 3600
    for _ in range(3):
        assert api.get("/customers").status_code == 200
    response = api.get("/customers")
    assert_problem(response, 429, "rate-limited")
    assert 1 <= int(response["Retry-After"]) <= 3600
    assert not RateWindow.objects.exists()


def test_an_unreachable_rate_limit_cache_counts_in_the_database(api, settings, caplog):
    import socket

    with socket.socket() as sock:  # a port where nothing listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    _cache_settings(
        settings,
        {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{port}/0",
            "OPTIONS": {"socket_connect_timeout": 0.5},
        },
    )
    settings.STOREFRONT_API_RATE_LIMIT = 2
    settings.STOREFRONT_API_RATE_WINDOW = 3600
    assert api.get("/customers").status_code == 200
    assert api.get("/customers").status_code == 200
    assert_problem(api.get("/customers"), 429, "rate-limited")
    assert RateWindow.objects.get().count == 3
    assert "counting in the database" in caplog.text


def _redis_url() -> str | None:
    import os

    import redis

    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=0.5).ping()
    except redis.RedisError:
        return None
    return url


def test_the_limit_holds_across_processes_in_redis(settings):
    """40 callers at once on their own Redis connections (as 40 gunicorn workers would) with
    a limit of 25: exactly 25 pass, and none touched the database."""
    from storefront.auth import Caller
    from storefront.problems import Problem
    from storefront.ratelimit import rate_limit_hit

    url = _redis_url()
    if url is None:
        pytest.skip("no Redis at REDIS_URL or 127.0.0.1:6379")
    _cache_settings(
        settings, {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url}
    )
    settings.STOREFRONT_API_RATE_LIMIT = 25
    settings.STOREFRONT_API_RATE_WINDOW = 3600
    results = []
    barrier = threading.Barrier(40)

    def call():
        barrier.wait()
        try:
            rate_limit_hit(Caller(principal="key:1"))
            results.append(200)
        except Problem as problem:
            results.append(429 if problem.slug == "rate-limited" else problem.slug)

    threads = [threading.Thread(target=call) for _ in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [200] * 25 + [429] * 15


def test_a_host_not_allowed_is_a_bad_request_not_malformed_json(api):
    from django.test import Client

    response = Client(HTTP_HOST="evil.example.com").post(
        "/api/v1/customers",
        json.dumps(SIGNUP),
        content_type="application/json",
        headers=api.headers(None),
    )
    assert_problem(response, 400, "bad-request")
    assert not Customer.objects.exists()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize(
    ("path", "body", "content_type"),
    [
        ("/customers", json.dumps(SIGNUP).encode(), "application/json"),
        (
            "/import",
            json.dumps({"type": "customer", "email": "ann@example.com"}).encode() + b"\n",
            "application/x-ndjson",
        ),
    ],
)
def test_a_chunked_body_is_refused_with_411_and_changes_nothing(
    live_server, path, body, content_type
):
    """Django reads a body only as long as Content-Length says: a chunked one was read as
    empty (the import answered 200, every count 0, having applied nothing)."""
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:10], body[10:]))
    headers = {
        "Authorization": f"Bearer {make_key()}",
        "Content-Type": content_type,
        "Transfer-Encoding": "chunked",
    }
    # In one write: the server answers 411 from the headers and closes; a body sent after
    # that answer (in a second write) met a closed socket (BrokenPipeError, now and then).
    with RawConnection(live_server) as raw:
        raw.send(raw.head(path, headers) + chunks + b"0\r\n\r\n")
        response, content = raw.response()
    document = json.loads(content)
    assert response.status == 411, document
    assert response.getheader("Content-Type") == "application/problem+json"
    assert document["type"].endswith("/length-required")
    assert Customer.objects.count() == 0


@pytest.mark.parametrize("encoding", ["gzip", "br", "deflate, gzip"])
def test_a_compressed_body_is_refused_with_415_and_changes_nothing(api, encoding):
    """Nothing decompresses a body: one sent with Content-Encoding was parsed as it came
    (plain JSON labelled gzip was applied, real gzip answered 400)."""
    count = Customer.objects.count()
    response = api.post("/customers", SIGNUP, headers={"Content-Encoding": encoding})
    document = assert_problem(response, 415, "unsupported-media-type")
    assert "Content-Encoding" in document["detail"]
    assert Customer.objects.count() == count
