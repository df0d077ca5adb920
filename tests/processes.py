"""Child processes the tests start (servers, workers)."""

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlencode

from django.conf import settings
from django.db import connection


def stop(process: subprocess.Popen, *, timeout: float) -> None:
    """Ask the process to stop (SIGTERM); kill it if it has not within `timeout` seconds."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def shared_database_url(**options) -> str:
    """The DATABASE_URL of this run's PostgreSQL test database, for another process (a worker,
    a server) to share it; `options` go in the query string (`conn_max_age=600`)."""
    db = connection.settings_dict
    query = f"?{urlencode(options)}" if options else ""
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}{query}"


def worker_env(*, vapid_keys, settings_module: str = "backoffice.settings_test", **env) -> dict:
    """The environment of a push worker process on the test database: these settings, the
    test VAPID keys, and `env` on top."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": settings_module,
        "DATABASE_URL": shared_database_url(),
        "VAPID_PRIVATE_KEY": vapid_keys.private_key,
        "VAPID_SUBJECT": "mailto:shop@example.com",
        **env,
    }


def wait_until_listening(process: subprocess.Popen, port: int, log: Path, *, tries=100) -> None:
    """Wait for a server process to accept connections on `port`; fail with its log if it
    exits first or never listens."""
    for _ in range(tries):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if process.poll() is not None:
                raise AssertionError(log.read_text()) from None
            time.sleep(0.2)
    raise AssertionError(f"nothing listens on port {port}:\n{log.read_text()}")


@contextmanager
def gunicorn(log: Path, port: int, *, workers: int, timeout: int, args=(), env=None):
    """gunicorn serving the test database (connections kept between requests, as in
    production) on `port`, once it listens: its process. Its output goes to `log`: a pipe
    nobody reads fills up (with an outage's tracebacks, say) and a worker writing to it
    blocks."""
    output = log.open("w")
    process = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("gunicorn")),
            "backoffice.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--timeout",
            str(timeout),
            *args,
        ],
        cwd=settings.BASE_DIR,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "backoffice.settings_test",
            "ALLOWED_HOSTS": "127.0.0.1",
            "DATABASE_URL": shared_database_url(conn_max_age=600),
            **(env or {}),
        },
        stdout=output,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until_listening(process, port, log, tries=150)
        yield process
    finally:
        stop(process, timeout=20)
        output.close()
