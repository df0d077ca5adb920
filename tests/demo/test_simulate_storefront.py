"""The storefront simulator plays through the real HTTP API of a live server."""

from io import StringIO

import pytest
from django.core.management import call_command

from clients.models import Customer
from demo.storefront_simulator import Client, Storefront
from orders.models import Order, OrderStatus
from storefront.models import ApiKey, Launch
from tests.factories import CustomerFactory
from tests.storefront.conftest import make_key

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def test_a_simulated_storefront_signs_up_launches_orders_and_pays(live_server):
    CustomerFactory.create_batch(3)
    shop = Storefront(Client(live_server.url, make_key()), seed=3)
    shop.load_customers()
    for _ in range(120):
        shop.step()
    assert shop.counts.get("sign-up") and shop.counts.get("order") and shop.counts.get("payment")
    assert Customer.objects.count() == 3 + shop.counts["sign-up"]
    assert Launch.objects.count() >= shop.counts["sign-up"] + shop.counts["order"]
    orders = Order.objects.filter(number__startswith="SIM-")
    assert orders.count() == shop.counts["order"]
    assert (
        orders.filter(status=OrderStatus.PAID).exists()
        or orders.filter(status=OrderStatus.FULFILLED).exists()
    )
    # Orders are sent without a source: the launch recorded just before attributes them.
    attributed = orders.exclude(source="")
    assert attributed.exists()
    out = StringIO()
    call_command("rebuild_customer_stats", "--check", stdout=out, stderr=StringIO())
    assert ", 0 had drifted" in out.getvalue()


def test_the_command_runs_for_its_duration_and_revokes_its_key(live_server, settings):
    settings.DEBUG = True
    CustomerFactory.create_batch(2)
    out = StringIO()
    call_command(
        "simulate_storefront",
        "--rate",
        "20",
        "--duration",
        "2",
        "--url",
        live_server.url,
        "--seed",
        "1",
        stdout=out,
        stderr=StringIO(),
    )
    assert "Storefront simulator stopped:" in out.getvalue()
    assert "nothing done" not in out.getvalue()
    key = ApiKey.objects.get(name__startswith="Storefront simulator")
    assert key.revoked_at is not None


def test_sigterm_stops_it_while_it_waits_for_the_server():
    """`make run` stops the simulator with SIGTERM when the server could not start (its port
    taken): it stops then, rather than waiting out --wait for a server that will not come."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time
    from pathlib import Path

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    root = Path(__file__).resolve().parents[2]
    command = subprocess.Popen(
        [
            *(sys.executable, "manage.py", "simulate_storefront"),
            *("--url", f"http://127.0.0.1:{port}", "--key", "bo_unused", "--wait", "60"),
        ],
        cwd=root,
        env={**os.environ, "SECRET_KEY": "test", "DEBUG": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Waiting for the server once its SIGTERM handler is in place (SigCgt's bit 15).
    status = Path(f"/proc/{command.pid}/status")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and command.poll() is None:
        caught = next(x for x in status.read_text().splitlines() if x.startswith("SigCgt"))
        if int(caught.split()[1], 16) & (1 << (signal.SIGTERM - 1)):
            break
        time.sleep(0.1)
    time.sleep(0.5)
    assert command.poll() is None
    started = time.monotonic()
    command.send_signal(signal.SIGTERM)
    out, err = command.communicate(timeout=20)
    assert time.monotonic() - started < 5
    assert command.returncode == 0, err
    assert "Storefront simulator stopped: nothing done." in out
