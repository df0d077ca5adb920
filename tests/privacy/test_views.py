"""The privacy pages as staff use them, and their refusals."""

from datetime import timedelta

import pytest
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.timezone import localtime

from clients.models import Customer
from privacy.models import AccessLogEntry, ArchiveStatus, DataArchive, ErasureRequest
from privacy.services import erasure_request
from tests.factories import CustomerFactory, UserFactory

pytestmark = pytest.mark.django_db


def _pages(customer: Customer, erasure: ErasureRequest) -> list[tuple[str, str]]:
    """Every privacy page (method, url) only Admins may use."""
    archive = DataArchive.objects.create(
        customer=customer,
        requested_by=UserFactory(role="Admin"),
        requested_at=timezone.now(),
        expires_at=timezone.now() + timedelta(hours=1),
        status=ArchiveStatus.READY,
        content=b"PK",
    )
    return [
        ("get", reverse("privacy:overview")),
        ("post", reverse("privacy:overview")),
        ("get", reverse("privacy:audit")),
        ("post", reverse("privacy:archive-create", args=[customer.pk])),
        ("get", reverse("privacy:archive-detail", args=[archive.pk])),
        ("post", reverse("privacy:archive-download", args=[archive.pk])),
        ("get", reverse("privacy:erasure-create", args=[customer.pk])),
        ("post", reverse("privacy:erasure-create", args=[customer.pk])),
        ("post", reverse("privacy:erasure-cancel", args=[erasure.pk])),
    ]


@pytest.mark.parametrize("role", ["Viewer", "Staff"])
def test_every_privacy_page_is_refused_to_viewers_and_staff(role):
    customer = CustomerFactory()
    erasure = erasure_request(customer=CustomerFactory(), actor=None, reason="Asked by email")
    client = Client()
    client.force_login(UserFactory(role=role))
    for method, url in _pages(customer, erasure):
        response = getattr(client, method)(url, {"reason": "x", "confirm": "on"})
        assert response.status_code == 403, (method, url)
    assert ErasureRequest.objects.filter(cancelled_at=None).count() == 1
    assert not ErasureRequest.objects.filter(customer=customer).exists()
    assert DataArchive.objects.get().status == ArchiveStatus.READY
    assert not AccessLogEntry.objects.exists()


def test_admin_plans_an_erasure_sees_it_and_cancels_it(admin_client_role):
    customer = CustomerFactory()
    url = reverse("privacy:erasure-create", args=[customer.pk])
    form = admin_client_role.get(url)
    assert form.status_code == 200
    assert "10 days" in form.content.decode()
    refused = admin_client_role.post(url, {"reason": "Asked by email"})
    assert refused.status_code == 400  # the confirmation box
    refused = admin_client_role.post(url, {"reason": "  \x07 ", "confirm": "on"})
    assert refused.status_code == 400
    assert not ErasureRequest.objects.exists()
    done = admin_client_role.post(url, {"reason": "Asked by email", "confirm": "on"})
    assert done.status_code == 302
    erasure = ErasureRequest.objects.get(customer=customer)
    page = admin_client_role.get(customer.get_absolute_url()).content.decode()
    assert "Erasure planned for" in page
    assert reverse("privacy:erasure-cancel", args=[erasure.pk]) in page
    twice = admin_client_role.post(url, {"reason": "Again", "confirm": "on"})
    assert twice.status_code == 400
    assert "already planned" in twice.content.decode()
    cancel = admin_client_role.post(reverse("privacy:erasure-cancel", args=[erasure.pk]))
    assert cancel.status_code == 302
    erasure.refresh_from_db()
    assert erasure.cancelled_at is not None
    assert (
        "Erasure planned for"
        not in admin_client_role.get(customer.get_absolute_url()).content.decode()
    )
    actions = list(AccessLogEntry.objects.order_by("pk").values_list("action", flat=True))
    assert "erasure_request" in actions and "erasure_cancel" in actions


def test_viewer_sees_the_planned_erasure_without_the_buttons(viewer_client):
    customer = CustomerFactory()
    erasure_request(customer=customer, actor=None, reason="Asked by email")
    page = viewer_client.get(customer.get_absolute_url()).content.decode()
    assert "Erasure planned for" in page
    assert "Cancel the erasure" not in page
    assert "Erase this customer" not in page


def test_an_erased_customer_s_card_is_no_longer_edited(staff_client):
    from privacy.services import customers_erase

    customer = CustomerFactory()
    customers_erase(customers=Customer.objects.filter(pk=customer.pk))
    page = staff_client.get(customer.get_absolute_url()).content.decode()
    assert "Edit contact" not in page and "Edit note" not in page
    assert "@erased.invalid" not in page
    url = reverse("clients:contact-update", args=[customer.pk])
    assert staff_client.get(url).status_code == 404
    response = staff_client.post(url, {"first_name": "Back", "version": customer.version + 1})
    assert response.status_code == 404
    assert Customer.objects.get(pk=customer.pk).first_name == ""


def test_unknown_and_erased_customers_get_a_404(admin_client_role):
    assert (
        admin_client_role.get(reverse("privacy:erasure-create", args=[999999])).status_code == 404
    )
    assert (
        admin_client_role.post(reverse("privacy:erasure-cancel", args=[999999])).status_code == 404
    )
    customer = CustomerFactory()
    from privacy.services import customers_erase

    customers_erase(customers=Customer.objects.filter(pk=customer.pk))
    assert (
        admin_client_role.get(reverse("privacy:erasure-create", args=[customer.pk])).status_code
        == 404
    )


def test_the_overview_query_count_does_not_grow_with_planned_erasures(admin_client_role):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def count():
        with CaptureQueriesContext(connection) as queries:
            response = admin_client_role.get(reverse("privacy:overview"))
        assert response.status_code == 200
        return len(queries), response.content.decode()

    erasure_request(customer=CustomerFactory(), actor=UserFactory(role="Admin"), reason="One")
    small, _ = count()
    for i in range(12):
        erasure_request(customer=CustomerFactory(), actor=UserFactory(), reason=f"Asked {i}")
    large, page = count()
    assert large == small
    assert page.count("Cancel the erasure") == 13


@override_settings(PRIVACY_ERASURE_GRACE_DAYS=0)
def test_without_a_grace_period_the_erasure_is_carried_out_at_once(
    admin_client_role, django_capture_on_commit_callbacks
):
    customer = CustomerFactory(last_name="Quickgone")
    url = reverse("privacy:erasure-create", args=[customer.pk])
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client_role.post(url, {"reason": "Asked by email", "confirm": "on"})
    assert response.status_code == 302
    customer.refresh_from_db()
    assert customer.erased_at is not None and customer.last_name == ""
    assert ErasureRequest.objects.get(customer=customer).done_at is not None


def test_with_a_grace_period_nothing_is_erased_before_it_ends(
    admin_client_role, django_capture_on_commit_callbacks
):
    customer = CustomerFactory(last_name="Stillhere")
    url = reverse("privacy:erasure-create", args=[customer.pk])
    with django_capture_on_commit_callbacks(execute=True):
        admin_client_role.post(url, {"reason": "Asked by email", "confirm": "on"})
    customer.refresh_from_db()
    assert customer.erased_at is None and customer.last_name == "Stillhere"


def test_the_planned_erasure_s_date_is_written_as_the_pages_write_dates(admin_client_role):
    # It said "2026-12-12" where every other page says "12 Dec 2026" ("12 déc. 2026").
    customer = CustomerFactory()
    url = reverse("privacy:erasure-create", args=[customer.pk])
    response = admin_client_role.post(
        url, {"reason": "Asked by email", "confirm": "on"}, follow=True
    )
    due = ErasureRequest.objects.get(customer=customer).due_at
    expected = date_format(localtime(due), "SHORT_DATE_FORMAT")
    assert f"will be erased on {expected} unless" in response.text
    assert due.date().isoformat() not in response.text
