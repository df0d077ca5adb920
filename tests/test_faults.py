"""The back office while PostgreSQL restarts: requests fail cleanly, then work again.

A real gunicorn serves the test database with persistent connections. PostgreSQL is
stopped and started (and restarted under traffic): requests made while it is down get our
500 page quickly (no hang), and once it is back every request succeeds again without
restarting gunicorn, because CONN_HEALTH_CHECKS replaces the connections the restart killed.

Restarting PostgreSQL interrupts every other client of the server for a few seconds, so
this test only runs when RUN_FAULT_TESTS=1 (CI sets it for the PostgreSQL run).
"""

import http.client
import os
import socket
import subprocess
import threading
import time

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client

from tests import processes
from tests.factories import CustomerFactory, UserFactory
from tests.markers import fault_test

pytestmark = [
    *fault_test(
        needs_postgresql="restarts the PostgreSQL server: needs PostgreSQL",
        why_opt_in="restarts PostgreSQL, disrupting its other clients",
    ),
    pytest.mark.serial,
]

PORTS = range(8014, 8020)
REQUEST_TIMEOUT = 15  # seconds; a request taking longer counts as a hang
OUR_500_PAGE = "The error was logged. Please try again in a moment."


def _pg_version() -> str:
    return sorted(os.listdir("/etc/postgresql"))[-1]


def pg_ctl(action: str) -> None:
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", _pg_version(), "main", action],
        check=True,
        capture_output=True,
        timeout=120,
    )


def wait_for_postgres() -> None:
    db = settings.DATABASES["default"]
    for _ in range(120):
        ready = subprocess.run(
            ["pg_isready", "-q", "-h", db["HOST"] or "127.0.0.1", "-p", db["PORT"] or "5432"]
        )
        if ready.returncode == 0:
            return
        time.sleep(0.5)
    raise AssertionError("PostgreSQL did not come back")


def _free_port() -> int:
    for port in PORTS:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError(f"no free port in {PORTS}")


@pytest.fixture
def postgres_back_up():
    """Whatever happens in the test, PostgreSQL is running again afterwards."""
    yield
    if subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1"]).returncode != 0:
        pg_ctl("start")
    wait_for_postgres()
    # This process's own connection died with the restart: reconnect for the teardown.
    connection.close()


@pytest.fixture
def gunicorn(postgres_back_up, tmp_path):
    port = _free_port()
    access_log = ["--access-logfile", "-", "--access-logformat", "%(t)s %(p)s %(r)s %(s)s %(L)s"]
    with processes.gunicorn(
        tmp_path / "gunicorn.log", port, workers=2, timeout=60, args=access_log
    ):
        yield port


def fetch(port: int, path: str, cookie: str) -> tuple[int, str, float]:
    """(status, body, seconds) of a GET; a timeout raises."""
    started = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
    try:
        conn.request("GET", path, headers={"Cookie": cookie, "Host": "127.0.0.1"})
        response = conn.getresponse()
        return response.status, response.read().decode(), time.monotonic() - started
    finally:
        conn.close()


def test_requests_fail_cleanly_while_postgres_is_down_and_recover_after(gunicorn):
    customer = CustomerFactory(last_name="Restartproof")
    browser = Client()
    browser.force_login(UserFactory(role="Viewer"))
    cookie = f"{settings.SESSION_COOKIE_NAME}={browser.cookies[settings.SESSION_COOKIE_NAME].value}"
    pages = ["/clients/leads/?q=restartproof", f"/clients/{customer.pk}/"]

    # Both workers serve and keep their database connection open.
    for _ in range(6):
        for path in pages:
            status, body, _ = fetch(gunicorn, path, cookie)
            assert status == 200
            assert "Restartproof" in body

    # 1. PostgreSQL down: each request gets our 500 page promptly instead of hanging.
    pg_ctl("stop")
    try:
        for path in pages * 3:
            status, body, seconds = fetch(gunicorn, path, cookie)
            assert status == 500
            assert OUR_500_PAGE in body
            assert "Restartproof" not in body
            assert seconds < 5
    finally:
        pg_ctl("start")
    wait_for_postgres()

    # 2. Back up: the very first requests work again, on the same gunicorn workers.
    for _ in range(6):
        for path in pages:
            status, body, _ = fetch(gunicorn, path, cookie)
            assert status == 200, body[:300]
            assert "Restartproof" in body

    # 3. A restart under steady traffic: only 200s and our 500 page, never a hang.
    outcomes = []
    stop = threading.Event()

    def traffic():
        while not stop.is_set():
            try:
                status, body, seconds = fetch(gunicorn, pages[0], cookie)
            except OSError as error:  # a timeout or a dropped connection: recorded, asserted on
                outcomes.append((repr(error), False, REQUEST_TIMEOUT))
                continue
            outcomes.append((status, OUR_500_PAGE in body or "Restartproof" in body, seconds))
            time.sleep(0.02)

    worker = threading.Thread(target=traffic)
    worker.start()
    try:
        time.sleep(0.5)
        pg_ctl("restart")
        wait_for_postgres()
        time.sleep(2)
    finally:
        stop.set()
        worker.join(timeout=REQUEST_TIMEOUT * 2)
    assert not worker.is_alive()
    assert len(outcomes) >= 5, outcomes
    bad = [o for o in outcomes if o[0] not in (200, 500) or not o[1]]
    assert not bad, bad
    assert max(seconds for *_, seconds in outcomes) < 5
    # After the restart, back to normal.
    assert outcomes[-1][0] == 200
    for path in pages:
        assert fetch(gunicorn, path, cookie)[0] == 200
