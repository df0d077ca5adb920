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
from tests.storefront.conftest import Api, assert_problem, make_key

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


def test_a_running_key_is_409_and_a_dead_one_is_taken_over(api, settings):
    from datetime import timedelta

    from django.utils import timezone

    from storefront.auth import Caller
    from storefront.idempotency import idempotency_reserve

    key_id = ApiKey.objects.get().pk
    body = json.dumps(SIGNUP).encode()
    # A request with this key is running (reserved, not finished).
    from django.test import RequestFactory

    from storefront.idempotency import request_fingerprint

    request = RequestFactory().post("/api/v1/customers", body, content_type="application/json")
    fingerprint = request_fingerprint(request, body)
    record = idempotency_reserve(
        caller=Caller(principal=f"key:{key_id}"), key="busy", fingerprint=fingerprint
    )
    headers = {"Idempotency-Key": "busy"}
    response = api.post("/customers", SIGNUP, headers=headers)
    assert_problem(response, 409, "idempotency-key-in-use")
    assert response["Retry-After"]
    assert not Customer.objects.exists()
    # Its process died: after the lock timeout the key is taken over and the work done once.
    IdempotencyRecord.objects.filter(pk=record.pk).update(
        started_at=timezone.now() - timedelta(seconds=settings.STOREFRONT_API_IDEMPOTENCY_LOCK + 1)
    )
    assert api.post("/customers", SIGNUP, headers=headers).status_code == 201
    assert api.post("/customers", SIGNUP, headers=headers)["Idempotent-Replayed"] == "true"
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
@pytest.mark.django_db(transaction=True)
def test_concurrent_use_of_one_key_does_the_work_once():
    key = make_key()
    results = []
    barrier = threading.Barrier(8)

    def send():
        barrier.wait()
        response = Api(key).post("/customers", SIGNUP, headers={"Idempotency-Key": "race"})
        results.append(response.status_code)
        connection.close()

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Customer.objects.filter(email="grace@example.com").count() == 1
    assert set(results) <= {201, 409} and 201 in results


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
@pytest.mark.django_db(transaction=True)
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

    def broken(record, response):
        raise RuntimeError("database gone")

    monkeypatch.setattr("storefront.calls.idempotency_complete", broken)
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
