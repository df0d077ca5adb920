"""Syncing customers through GET /customers: a change still being written while a platform
reads is in its next sync, started from the `sync_from` the read returned."""

import threading
from datetime import datetime, timedelta
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from clients.models import Customer
from clients.services import customer_update_by_customer
from storefront.selectors import SYNC_CLOCK_MARGIN, SYNC_SQLITE_MARGIN
from tests.factories import CustomerFactory
from tests.storefront.conftest import Api, make_key

POSTGRESQL = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
WAIT = 60


def _sync(api: Api, since: str | None = None) -> tuple[list[int], str]:
    """Every page from `since`: the ids received and the first page's sync_from."""
    ids, cursor, first = [], None, None
    while True:
        query = "?limit=2" + (f"&updated_since={quote(since)}" if since else "")
        page = api.get("/customers" + query + (f"&cursor={cursor}" if cursor else "")).json()
        first = first or page["sync_from"]
        ids += [c["id"] for c in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return ids, first


@pytest.mark.django_db
def test_every_page_says_where_the_next_sync_starts(api):
    CustomerFactory.create_batch(3)
    before = timezone.now()
    page = api.get("/customers?limit=2").json()
    sync_from = datetime.fromisoformat(page["sync_from"])
    margin = SYNC_CLOCK_MARGIN if POSTGRESQL else SYNC_SQLITE_MARGIN
    # No other transaction runs: now, less the margin (this test's own transaction is older).
    assert before - margin - timedelta(minutes=5) < sync_from <= timezone.now() - margin
    assert api.get(f"/customers?cursor={page['next_cursor']}").json()["sync_from"]
    schema = api.get("/openapi.json").json()["components"]["schemas"]["CustomerPage"]
    assert "sync_from" in schema["required"]
    assert "updated_since" in schema["properties"]["sync_from"]["description"]


@pytest.mark.skipif(not POSTGRESQL, reason="needs PostgreSQL: SQLite serializes writes")
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_change_committed_after_a_sync_read_is_in_the_next_sync(monkeypatch):
    """A customer's change is stamped when its transaction writes it and becomes visible at
    its commit. Here another customer's later change commits first: a platform that started
    its next sync from the last `updated_at` it received (or from its own clock) would never
    see the first change. From `sync_from` it does: the start of the oldest transaction still
    running, not the time of the read (the clock margin, set to 0 here, would hide that in a
    test that holds the change back for less than the margin)."""
    monkeypatch.setattr("storefront.selectors.SYNC_CLOCK_MARGIN", timedelta(0))
    api = Api(make_key())
    early, late = CustomerFactory(), CustomerFactory()
    hour_ago = timezone.now() - timedelta(hours=1)
    Customer.objects.filter(pk__in=[early.pk, late.pk]).update(updated_at=hour_ago)
    _ids, start = _sync(api)
    written, release, failed = threading.Event(), threading.Event(), []

    def slow_writer():
        try:
            with transaction.atomic():
                customer = Customer.objects.get(pk=early.pk)
                customer_update_by_customer(customer=customer, fields={"first_name": "Slow"})
                written.set()
                if not release.wait(WAIT):
                    raise TimeoutError("never released")
        except Exception as exc:  # reported by the test, not lost in the thread
            failed.append(exc)
            written.set()
        finally:
            connection.close()

    writer = threading.Thread(target=slow_writer)
    writer.start()
    try:
        assert written.wait(WAIT) and not failed, failed
        stamped = Customer.objects.get(pk=early.pk).updated_at  # the version before: committed
        customer_update_by_customer(
            customer=Customer.objects.get(pk=late.pk), fields={"first_name": "Fast"}
        )
        ids, sync_from = _sync(api, start)
        assert ids == [late.pk]  # the slow change is not visible yet
    finally:
        release.set()
        writer.join(WAIT)
    assert not failed, failed
    slow = Customer.objects.get(pk=early.pk)
    assert slow.first_name == "Slow" and slow.updated_at > stamped
    received = api.get(f"/customers/{late.pk}").json()["updated_at"]
    # What the last updated_at received would have missed: the slow change is older.
    assert slow.updated_at < datetime.fromisoformat(received)
    ids, _next = _sync(api, sync_from)
    assert early.pk in ids
