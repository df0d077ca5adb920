"""The access log: what is logged, /audit/ for Admins only, append-only, pruned."""

from datetime import timedelta

import pytest
from django.db import DatabaseError, connection, transaction
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from privacy.models import AccessAction, AccessLogEntry
from privacy.services import access_log_prune
from tests.factories import CustomerFactory, UserFactory

pytestmark = pytest.mark.django_db


def _entry(**fields):
    values = {"at": timezone.now(), "action": AccessAction.CLIENT_VIEW, "username": "x"}
    values.update(fields)
    return AccessLogEntry.objects.create(**values)


def test_each_client_page_view_is_logged_with_who_and_from_where(viewer_client):
    customer = CustomerFactory()
    viewer_client.get(customer.get_absolute_url(), REMOTE_ADDR="203.0.113.7")
    entry = AccessLogEntry.objects.get()
    assert (entry.action, entry.customer_id, entry.ip) == (
        "client_view",
        customer.pk,
        "203.0.113.7",
    )
    assert entry.username.startswith("user") and entry.user_id is not None
    assert entry.path == customer.get_absolute_url()


@pytest.mark.parametrize("role", ["Viewer", "Staff"])
def test_audit_is_refused_to_viewers_and_staff(role):
    client = Client()
    client.force_login(UserFactory(role=role))
    assert client.get("/audit/").status_code == 403
    assert client.get("/privacy/").status_code == 403
    assert not AccessLogEntry.objects.filter(action=AccessAction.AUDIT_VIEW).exists()


def test_admin_reads_the_log_per_customer_and_per_user(admin_client_role):
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    first, second = CustomerFactory(), CustomerFactory()
    for user in (alice, bob):
        client = Client()
        client.force_login(user)
        for customer in (first, second):
            _entry(user_id=user.pk, username=user.username, customer_id=customer.pk)
    page = admin_client_role.get("/audit/", {"customer": first.pk})
    assert page.status_code == 200
    rows = page.context["table"].page.object_list
    assert {(r.record.username, r.record.customer_id) for r in rows} == {
        ("alice", first.pk),
        ("bob", first.pk),
    }
    rows = admin_client_role.get("/audit/", {"user": "ALICE"}).context["table"].page.object_list
    assert {(r.record.username, r.record.customer_id) for r in rows} == {
        ("alice", first.pk),
        ("alice", second.pk),
    }
    # Reading the log is logged too.
    assert AccessLogEntry.objects.filter(action=AccessAction.AUDIT_VIEW).count() == 2


@pytest.mark.parametrize(
    "query",
    [
        {"customer": "abc"},
        {"customer": "-1"},
        {"customer": str(2**70)},
        {"action": "nope"},
        {"date_after": "2026-13-45"},
        {"user": "x" * 500},
    ],
)
def test_bad_filters_get_an_answer_not_an_error(admin_client_role, query):
    _entry(customer_id=1)
    response = admin_client_role.get("/audit/", query)
    assert response.status_code == 200
    assert list(response.context["table"].page.object_list) == []


def test_the_audit_page_query_count_does_not_grow(admin_client_role):
    def count():
        with CaptureQueriesContext(connection) as queries:
            assert admin_client_role.get("/audit/").status_code == 200
        return len(queries)

    _entry(customer_id=1)
    small = count()
    for i in range(60):
        _entry(customer_id=i + 2, detail={"rows": i})
    assert count() == small


def test_entries_cannot_be_changed():
    entry = _entry(customer_id=1)
    with pytest.raises(DatabaseError), transaction.atomic():
        AccessLogEntry.objects.filter(pk=entry.pk).update(customer_id=2)
    entry.refresh_from_db()
    assert entry.customer_id == 1


@override_settings(PRIVACY_ACCESS_LOG_DAYS=30)
def test_old_entries_are_pruned_after_the_setting():
    now = timezone.now()
    old = _entry(at=now - timedelta(days=30, seconds=1))
    kept = _entry(at=now - timedelta(days=29, hours=23))
    assert access_log_prune(now=now) == 1
    assert list(AccessLogEntry.objects.values_list("pk", flat=True)) == [kept.pk]
    assert not AccessLogEntry.objects.filter(pk=old.pk).exists()
