"""POST /import with an Idempotency-Key: a finished import's answer is replayed and nothing is
applied twice; the key is held while the import runs, freed when it stops midway, and taken
over once the process holding it stopped renewing it (killed)."""

import json
import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from clients.models import AuditEntry, Customer
from orders.models import Order
from storefront.auth import Caller
from storefront.endpoints import imports
from storefront.idempotency import Claim, Stored, idempotency_claim
from storefront.models import IdempotencyRecord
from tests.factories import CustomerFactory
from tests.storefront.conftest import Api, RawConnection, assert_problem, make_key
from tests.storefront.test_import import LINES, NDJSON, order_line

pytestmark = pytest.mark.django_db


def ndjson(*lines) -> bytes:
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def send(api, body: bytes, key: str | None):
    """(response, its whole content)."""
    headers = {"Idempotency-Key": key} if key else {}
    response = api.post("/import", raw=body, content_type=NDJSON, headers=headers)
    content = b"".join(response.streaming_content) if response.streaming else response.content
    return response, content


def results(content: bytes) -> list:
    return [json.loads(line).get("result") for line in content.splitlines()[:-1]]


def written():
    return Order.objects.count(), AuditEntry.objects.count()


def _at_once(count: int, call) -> list:
    """`call()`'s results, called by `count` threads started together (PostgreSQL: each on
    its own connection)."""
    start = threading.Barrier(count)
    found = []

    def one():
        try:
            start.wait()
            found.append(call())
        finally:
            connection.close()

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return found


def test_a_retry_gets_the_first_answer_back_and_nothing_is_applied_again(api):
    customer = CustomerFactory()
    body = ndjson(
        {"type": "customer", "email": "new@example.com", "first_name": "Ada"},
        order_line("K-1", customer, status="paid"),
        {"type": "parcel"},
    )
    first, answer = send(api, body, "import-1")
    assert first.status_code == 200 and "Idempotent-Replayed" not in first
    assert results(answer) == ["created", "created", "error"]
    before = written()

    again, replayed = send(api, body, "import-1")
    assert again.status_code == 200
    assert again["Idempotent-Replayed"] == "true"
    assert again["Content-Type"] == NDJSON
    # "created" again: the first answer, not a second run (which answers "unchanged").
    assert replayed == answer
    assert written() == before

    _, rerun = send(api, body, None)  # without the key the file runs again, finding it all
    assert results(rerun) == ["unchanged", "unchanged", "error"]


def test_the_answer_is_stored_packed_and_replayed_whole(api):
    customer = CustomerFactory()
    lines = [order_line(f"P-{n}", customer, total="1.00") for n in range(300)]  # 300 refused
    _, answer = send(api, ndjson(*lines), "packed")
    assert results(answer) == ["error"] * 300
    record = IdempotencyRecord.objects.get(key="packed")
    assert (record.state, record.status_code, record.encoding) == ("done", 200, "deflate")
    assert len(bytes(record.body)) * 10 < len(answer)
    _, replayed = send(api, ndjson(*lines), "packed")
    assert replayed == answer


def test_the_same_key_with_another_file_is_refused_and_applies_nothing(api):
    customer = CustomerFactory()
    send(api, ndjson(order_line("K-1", customer)), "shared")
    before = written()
    response, _ = send(api, ndjson(order_line("K-2", customer)), "shared")
    assert_problem(response, 422, "idempotency-key-reused")
    assert written() == before
    assert not Order.objects.filter(number="K-2").exists()


def test_lines_past_the_limit_count_in_the_request_the_key_stands_for(api, monkeypatch):
    monkeypatch.setattr(imports, "MAX_LINES", 2)
    customer = CustomerFactory()
    head = ndjson(order_line("T-1", customer), order_line("T-2", customer))
    _, answer = send(api, head + ndjson(order_line("T-3", customer)), "long")
    assert json.loads(answer.splitlines()[-1])["truncated"] is True
    _, replayed = send(api, head + ndjson(order_line("T-3", customer)), "long")
    assert replayed == answer
    other, _ = send(api, head + ndjson(order_line("T-4", customer)), "long")
    assert_problem(other, 422, "idempotency-key-reused")


def test_a_key_used_by_another_call_is_refused_both_ways(api):
    customer = CustomerFactory()
    order = {"number": "X-1", "customer_id": customer.pk, "lines": LINES}
    assert api.post("/orders", order, headers={"Idempotency-Key": "once"}).status_code == 201
    response, _ = send(api, ndjson(order_line("X-2", customer)), "once")
    assert_problem(response, 422, "idempotency-key-reused")

    send(api, ndjson(order_line("X-3", customer)), "twice")
    other = {**order, "number": "X-4"}
    reused = api.post("/orders", other, headers={"Idempotency-Key": "twice"})
    assert_problem(reused, 422, "idempotency-key-reused")
    assert not Order.objects.filter(number__in=["X-2", "X-4"]).exists()


def test_keys_belong_to_their_caller(api):
    customer = CustomerFactory()
    body = ndjson(order_line("C-1", customer))
    _, answer = send(api, body, "mine")
    _, theirs = send(Api(make_key()), body, "mine")
    assert results(answer) == ["created"]
    assert results(theirs) == ["unchanged"]  # run for the other caller, not replayed


def test_while_an_import_runs_its_key_is_held(api):
    customer = CustomerFactory()
    body = ndjson(order_line("R-1", customer))
    # The view has claimed the key; the answer is not written until it is read.
    running = api.post("/import", raw=body, content_type=NDJSON, headers={"Idempotency-Key": "r"})
    assert IdempotencyRecord.objects.get(key="r").state == "running"

    second, _ = send(api, body, "r")
    assert_problem(second, 409, "idempotency-key-in-use")
    assert int(second["Retry-After"]) >= 1
    assert not Order.objects.filter(number="R-1").exists()

    answer = b"".join(running.streaming_content)
    assert results(answer) == ["created"]
    third, replayed = send(api, body, "r")
    assert third["Idempotent-Replayed"] == "true" and replayed == answer
    assert Order.objects.filter(number="R-1").count() == 1


def test_a_key_held_by_a_process_that_died_is_taken_over_after_the_lease(api, settings):
    customer = CustomerFactory()
    body = ndjson(order_line("D-1", customer))
    # A worker killed once it claimed the key: the answer is never written, nor released.
    api.post("/import", raw=body, content_type=NDJSON, headers={"Idempotency-Key": "d"})
    held, _ = send(api, body, "d")
    assert_problem(held, 409, "idempotency-key-in-use")

    lease = timedelta(seconds=settings.STOREFRONT_API_IDEMPOTENCY_LEASE + 1)
    IdempotencyRecord.objects.filter(key="d").update(started_at=timezone.now() - lease)
    taken, answer = send(api, body, "d")
    assert taken.status_code == 200 and "Idempotent-Replayed" not in taken
    assert results(answer) == ["created"]
    _, replayed = send(api, body, "d")
    assert replayed == answer


def test_a_claim_taken_over_no_longer_stores_renews_or_frees_the_key(settings):
    caller = Caller(principal="key:test")
    old = idempotency_claim(caller=caller, key="k")
    assert isinstance(old, Claim)
    lease = timedelta(seconds=settings.STOREFRONT_API_IDEMPOTENCY_LEASE + 1)
    IdempotencyRecord.objects.filter(key="k").update(started_at=timezone.now() - lease)
    new = idempotency_claim(caller=caller, key="k")
    assert isinstance(new, Claim) and new.pk == old.pk

    old.answered(b"old\n")
    assert old.finish(fingerprint="a" * 64, status_code=200, content_type=NDJSON) is False
    old.release()
    assert IdempotencyRecord.objects.get(key="k").state == "running"

    new.answered(b"new\n")
    assert new.finish(fingerprint="b" * 64, status_code=200, content_type=NDJSON) is True
    stored = idempotency_claim(caller=caller, key="k")
    assert isinstance(stored, Stored) and stored.fingerprint == "b" * 64


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_running_key_is_renewed_by_time_while_the_call_waits(settings):
    # Renewed only when a piece of the answer was written: an import waiting on a slow
    # client lost its key to a retry, which ran the work again.
    settings.STOREFRONT_API_IDEMPOTENCY_LEASE = 0.6  # renewed every 0.1 s
    claim = idempotency_claim(caller=Caller(principal="key:test"), key="k")
    long_ago = timezone.now() - timedelta(hours=1)
    IdempotencyRecord.objects.filter(key="k").update(started_at=long_ago)
    with claim.held():
        time.sleep(0.5)  # no piece of answer written meanwhile
    renewed = IdempotencyRecord.objects.get(key="k").started_at
    assert renewed > timezone.now() - timedelta(seconds=1)
    time.sleep(0.3)
    assert IdempotencyRecord.objects.get(key="k").started_at == renewed  # stopped with it


def test_an_import_that_stops_midway_frees_its_key_and_its_retry_finishes_the_work(
    api, monkeypatch
):
    monkeypatch.setattr(imports, "BATCH", 5)
    monkeypatch.setattr(imports, "AHEAD", 5)
    customer = CustomerFactory()
    body = ndjson(*(order_line(f"M-{n}", customer) for n in range(12)))
    read = imports._read_lines

    def dropped(source):
        for number, raw in read(source):
            if number > 7:
                raise OSError("connection reset by peer")
            yield number, raw

    monkeypatch.setattr(imports, "_read_lines", dropped)
    _, answer = send(api, body, "midway")
    assert json.loads(answer.splitlines()[-1])["error"] == "server-error"
    assert not IdempotencyRecord.objects.filter(key="midway").exists()

    monkeypatch.setattr(imports, "_read_lines", read)
    _, retried = send(api, body, "midway")
    assert results(retried) == ["unchanged"] * 5 + ["created"] * 7
    assert Order.objects.filter(number__startswith="M-").count() == 12
    _, replayed = send(api, body, "midway")
    assert replayed == retried


# Committed as a server commits (the response's close ends the request: Django closes the
# connection then, which a test's transaction would not survive).
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_client_gone_midway_frees_the_key(api, monkeypatch):
    monkeypatch.setattr(imports, "BATCH", 5)
    monkeypatch.setattr(imports, "AHEAD", 5)
    customer = CustomerFactory()
    body = ndjson(*(order_line(f"G-{n}", customer) for n in range(12)))
    response = api.post("/import", raw=body, content_type=NDJSON, headers={"Idempotency-Key": "g"})
    pieces = iter(response.streaming_content)
    first = next(pieces)
    assert results(first + b"{}\n") == ["created"] * 5
    response.close()  # what the server does when the client hangs up
    assert not IdempotencyRecord.objects.filter(key="g").exists()
    _, retried = send(api, body, "g")
    assert results(retried)[:5] == ["unchanged"] * 5


def test_a_finished_key_past_its_time_runs_the_import_again(api, settings):
    customer = CustomerFactory()
    body = ndjson(order_line("E-1", customer))
    send(api, body, "old")
    ttl = timedelta(seconds=settings.STOREFRONT_API_IDEMPOTENCY_TTL + 1)
    IdempotencyRecord.objects.filter(key="old").update(created_at=timezone.now() - ttl)
    response, answer = send(api, body, "old")
    assert "Idempotent-Replayed" not in response
    assert results(answer) == ["unchanged"]


def test_a_malformed_key_is_refused_before_anything_is_read(api):
    customer = CustomerFactory()
    response, _ = send(api, ndjson(order_line("B-1", customer)), "é")
    assert_problem(response, 400, "bad-request")
    assert not Order.objects.exists() and not IdempotencyRecord.objects.exists()


def test_the_schema_offers_the_key_on_the_import(api):
    schema = api.get("/openapi.json").json()
    operation = schema["paths"]["/api/v1/import"]["post"]
    assert "Idempotency-Key" in [p["name"] for p in operation.get("parameters", [])]
    assert "409" in {str(status) for status in operation["responses"]}


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="needs concurrent connections (PostgreSQL)"
)
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_imports_with_one_key_at_once_apply_the_file_once():
    key = make_key()
    customer = CustomerFactory()
    body = ndjson(*(order_line(f"S-{n}", customer) for n in range(40)))
    answers = _at_once(2, lambda: send(Api(key), body, "same"))
    statuses = sorted(response.status_code for response, _ in answers)
    assert statuses in ([200, 200], [200, 409])
    ran = [content for response, content in answers if response.status_code == 200]
    assert results(ran[0]) == ["created"] * 40  # the other one was refused or replayed
    if len(ran) == 2:
        assert ran[1] == ran[0]
    assert Order.objects.filter(number__startswith="S-").count() == 40


def _cut_short(live_server, api_key: str, body: bytes, sent: int, key: str) -> tuple:
    """POST the body announcing its whole length, send only `sent` bytes and hang up the
    sending side (a connection dropped midway): (the status, the answer's lines)."""
    headers = _headers(api_key, key, len(body))
    with RawConnection(live_server) as raw:
        raw.send(raw.head("/import", headers) + body[:sent], hang_up=True)
        response, content = raw.response()
    return response.status, [json.loads(line) for line in content.splitlines()]


def _headers(api_key: str, key: str, length) -> dict:
    return {
        "Authorization": f"Bearer {api_key}",
        "Content-Type": NDJSON,
        "Idempotency-Key": key,
        "Content-Length": length,
    }


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_body_cut_short_stops_the_import_and_frees_the_key(live_server, monkeypatch):
    # gunicorn and Django read a body that ends before its Content-Length as complete: the
    # import answered its cut last line as a line of its own, and stored the answer for the
    # key, so the retry of the whole file was refused as another request (422).
    monkeypatch.setattr(imports, "BATCH", 2)
    monkeypatch.setattr(imports, "AHEAD", 2)
    api_key = make_key()
    customer = CustomerFactory()
    body = ndjson(*(order_line(f"CUT-{n}", customer) for n in range(4)))
    cut = body.index(b"CUT-3")  # in the middle of the fourth line
    status, answers = _cut_short(live_server, api_key, body, cut, "cut")
    assert status == 200
    # The first batch answered and stored; the third line, whole but in the batch the cut
    # interrupted, is neither.
    assert [a.get("result") for a in answers[:-1]] == ["created"] * 2
    assert answers[-1]["error"] == "body-incomplete"
    assert f"{cut} of {len(body)} bytes" in answers[-1]["detail"]
    assert not IdempotencyRecord.objects.filter(key="cut").exists()
    assert Order.objects.filter(number__startswith="CUT-").count() == 2

    retry, content = send(Api(api_key), body, "cut")
    assert retry.status_code == 200 and "Idempotent-Replayed" not in retry
    assert results(content) == ["unchanged"] * 2 + ["created"] * 2
    # And a retry of the finished import cut short gets a clear 400, not the answer.
    status, cut_retry = _cut_short(live_server, api_key, body, cut, "cut")
    assert status == 400 and cut_retry[0]["type"].endswith("/bad-request")
    assert f"after {cut} of the {len(body)} bytes" in cut_retry[0]["detail"]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_slow_sender_keeps_its_key_past_the_lease(live_server, settings):
    settings.STOREFRONT_API_IDEMPOTENCY_LEASE = 0.6
    api_key = make_key()
    customer = CustomerFactory()
    body = ndjson(*(order_line(f"SLOW-{n}", customer) for n in range(6)))
    with RawConnection(live_server) as raw:
        raw.send(raw.head("/import", _headers(api_key, "slow", len(body))) + body[: len(body) // 2])
        time.sleep(2)  # three leases without a byte
        retry, _ = send(Api(api_key), body, "slow")
        assert_problem(retry, 409, "idempotency-key-in-use")
        raw.send(body[len(body) // 2 :])
        _, answer = raw.response()
    assert results(answer) == ["created"] * 6
    again, replayed = send(Api(api_key), body, "slow")
    assert again["Idempotent-Replayed"] == "true" and replayed == answer
    assert Order.objects.filter(number__startswith="SLOW-").count() == 6


def test_an_order_call_with_a_key_an_import_holds_gets_409(api):
    customer = CustomerFactory()
    api.post(
        "/import",
        raw=ndjson(order_line("H-1", customer)),
        content_type=NDJSON,
        headers={"Idempotency-Key": "held"},
    )  # claimed, its answer not read yet
    order = {"number": "H-2", "customer_id": customer.pk, "lines": LINES}
    response = api.post("/orders", order, headers={"Idempotency-Key": "held"})
    assert_problem(response, 409, "idempotency-key-in-use")
    assert int(response["Retry-After"]) >= 1


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_content_length_of_00_is_an_empty_body(live_server):
    with RawConnection(live_server) as raw:
        raw.send(raw.head("/import", _headers(make_key(), "zero", "00")))
        response, content = raw.response()
    assert response.status == 422 and json.loads(content)["type"].endswith("/validation")
    assert not IdempotencyRecord.objects.filter(key="zero").exists()


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="needs concurrent connections (PostgreSQL)"
)
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_same_file_sent_twice_at_once_is_applied_once_and_answered_whole(monkeypatch):
    # Without keys: one import's batches met the other's order numbers and customers, and
    # ended on server-error, its customers answered "another customer already has it".
    monkeypatch.setattr(imports, "BATCH", 50)
    monkeypatch.setattr(imports, "AHEAD", 50)
    key = make_key()
    lines = [{"type": "customer", "email": f"twin{n}@example.com"} for n in range(30)]
    customer = CustomerFactory()
    lines += [order_line(f"TW-{n}", customer) for n in range(300)]
    body = ndjson(*lines)
    answers = _at_once(2, lambda: send(Api(key), body, None))
    for response, content in answers:
        assert response.status_code == 200
        assert "summary" in json.loads(content.splitlines()[-1]), content.splitlines()[-1]
        assert set(results(content)) <= {"created", "unchanged"}
    assert Order.objects.filter(number__startswith="TW-").count() == 300
    assert Customer.objects.filter(email__startswith="twin").count() == 30
