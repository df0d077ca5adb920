"""A real gunicorn worker killed with SIGKILL in the middle of an import sent with an
Idempotency-Key (PostgreSQL only: the server is another process and must see the committed
test database).

What must hold: the lines answered before the kill are stored; the key stays held (409 with
Retry-After) until the lease runs out, since nothing can tell a dead worker from a slow one;
then a retry with the same key and file finishes the work (what was stored is `unchanged`)
and its answer is the one replayed from then on; the statistics stay exact."""

import http.client
import json
import os
import signal
import socket
import subprocess
import time
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command

from orders.models import Order
from storefront.models import IdempotencyRecord
from tests.factories import CustomerFactory
from tests.processes import gunicorn
from tests.storefront.conftest import make_key

pytestmark = [
    pytest.mark.skipif(
        not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"),
        reason="needs PostgreSQL: the killed worker is another process",
    ),
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

LEASE = 6  # seconds (STOREFRONT_API_IDEMPOTENCY_LEASE's least value)
ORDERS = 6000  # three batches of 2,000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    """gunicorn, one worker, on the test database: (port, master process)."""
    port = _free_port()
    lease = {"STOREFRONT_API_IDEMPOTENCY_LEASE": str(LEASE)}
    with gunicorn(tmp_path / "gunicorn.log", port, workers=1, timeout=120, env=lease) as master:
        yield port, master


def _workers(master: subprocess.Popen) -> list[int]:
    children = Path(f"/proc/{master.pid}/task/{master.pid}/children").read_text()
    return [int(pid) for pid in children.split()]


def _send(port: int, key: str, body: bytes) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request(
        "POST",
        "/api/v1/import",
        body=body,
        headers={
            "Authorization": f"Bearer {key}",
            "Content-Type": "application/x-ndjson",
            "Idempotency-Key": "history-2026",
            "Host": "127.0.0.1",
        },
    )
    return conn.getresponse()


def _results(content: bytes) -> list[str]:
    return [json.loads(line).get("result") for line in content.splitlines()[:-1]]


def test_a_worker_killed_midway_holds_the_key_for_the_lease_then_the_retry_finishes(server):
    port, master = server
    api_key = make_key()
    customers = [CustomerFactory() for _ in range(20)]
    body = b"".join(
        json.dumps(
            {
                "type": "order",
                "number": f"KILL-{n}",
                "customer_id": customers[n % 20].pk,
                "placed_at": "2026-03-01T10:00:00Z",
                "status": "paid",
                "lines": [{"product_name": "Mug", "quantity": 1, "unit_price": "5.00"}],
            }
        ).encode()
        + b"\n"
        for n in range(ORDERS)
    )

    first = _send(port, api_key, body)
    assert first.status == 200
    answered = [first.readline() for _ in range(2000)]  # the first batch, committed
    assert all(json.loads(line)["result"] == "created" for line in answered)
    (worker,) = _workers(master)
    os.kill(worker, signal.SIGKILL)
    stored = Order.objects.filter(number__startswith="KILL-").count()
    assert stored in (2000, 4000)  # the second batch may have committed before the kill

    # Nothing tells a dead worker from a slow one until the lease runs out.
    held = _send(port, api_key, body)
    assert held.status == 409, held.read()
    assert int(held.getheader("Retry-After")) >= 1
    assert json.loads(held.read())["type"].endswith("/idempotency-key-in-use")
    assert IdempotencyRecord.objects.get(key="history-2026").state == "running"

    time.sleep(LEASE + 0.5)
    retry = _send(port, api_key, body)
    assert retry.status == 200 and retry.getheader("Idempotent-Replayed") is None
    answer = retry.read()
    assert _results(answer) == ["unchanged"] * stored + ["created"] * (ORDERS - stored)
    assert Order.objects.filter(number__startswith="KILL-").count() == ORDERS

    replay = _send(port, api_key, body)
    assert replay.getheader("Idempotent-Replayed") == "true"
    assert replay.read() == answer

    out = StringIO()
    call_command("rebuild_customer_stats", "--check", stdout=out, stderr=StringIO())
    assert ", 0 had drifted" in out.getvalue()
