"""Web push fixtures: a VAPID key pair and a real local push service (tests/push_service.py).

``vapid_keys`` (session scope) is the application server's key pair, in the forms a settings file
and pywebpush use. ``push_service`` (one per test) is a started `PushService` whose subscriptions
are restricted to ``vapid_keys.public_key``, like browser subscriptions made with that
``applicationServerKey``: a message signed with any other key is answered 403. Point the code under
test at ``vapid_keys.private_key`` (with pytest-django's ``settings`` fixture, for example), or
build a ``PushService(vapid_public_key=...)`` of your own for another key.
"""

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives import serialization
from py_vapid import Vapid
from py_vapid.utils import b64urlencode

from tests.notifications.faults import Workers
from tests.push_service import PushService


@dataclass(frozen=True)
class VapidKeys:
    """An application server key pair."""

    # base64url of the raw 32-octet private scalar: what pywebpush's vapid_private_key accepts.
    private_key: str
    # base64url of the uncompressed P-256 point: the browser's applicationServerKey.
    public_key: str
    # The same key as a py_vapid signer (``vapid.sign(claims)`` gives the Authorization header).
    vapid: Vapid


def make_vapid_keys() -> VapidKeys:
    """Generate a fresh application server key pair."""
    vapid = Vapid()
    vapid.generate_keys()
    private_raw = vapid.private_key.private_numbers().private_value.to_bytes(32, "big")
    public_raw = vapid.public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return VapidKeys(
        private_key=b64urlencode(private_raw), public_key=b64urlencode(public_raw), vapid=vapid
    )


@pytest.fixture(scope="session")
def vapid_keys() -> VapidKeys:
    return make_vapid_keys()


@pytest.fixture
def push_service(vapid_keys: VapidKeys) -> Iterator[PushService]:
    with PushService(vapid_public_key=vapid_keys.public_key) as service:
        yield service


@pytest.fixture
def workers(settings, vapid_keys, tmp_path):
    """`manage.py db_worker` processes on the test database, for the push fault tests
    (tests/notifications/faults.py; `workers.configure(...)` adds settings)."""
    settings.TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
    pool = Workers(settings=settings, vapid_keys=vapid_keys, directory=tmp_path)
    try:
        yield pool
    finally:
        pool.stop_all()


@pytest.fixture
def deferred_tasks(settings):
    """A tasks backend that keeps the enqueued tasks instead of running them (and supports
    run_after, like the database one). Per thread: each thread has its own."""
    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.dummy.DummyBackend"}}
    from django.tasks import default_task_backend

    default_task_backend.clear()
    yield default_task_backend
    default_task_backend.clear()
