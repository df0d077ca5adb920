"""The customer's data archive: content against what was created, once, in time, audited."""

import csv
import io
import json
import zipfile
from datetime import timedelta

import pytest
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone

from clients.services import note_save
from privacy.models import AccessLogEntry, ArchiveStatus, DataArchive
from tests.factories import UserFactory
from tests.privacy.conftest import CITY, EMAIL, ENDPOINT, LAST, NOTE, STREET

pytestmark = pytest.mark.django_db


def _request(client, customer) -> DataArchive:
    response = client.post(reverse("privacy:archive-create", args=[customer.pk]))
    assert response.status_code == 302
    return DataArchive.objects.latest("pk")


def _download(client, archive):
    return client.post(reverse("privacy:archive-download", args=[archive.pk]))


def test_the_archive_holds_everything_about_the_customer(person, admin_client_role):
    customer = person.customer
    current = customer.notes.latest("created_at", "pk")
    note_save(customer=customer, actor=None, text="Second version", based_on=current.pk)
    archive = _request(admin_client_role, customer)
    detail = admin_client_role.get(reverse("privacy:archive-detail", args=[archive.pk]))
    assert "Download the ZIP file" in detail.content.decode()
    response = _download(admin_client_role, archive)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    files = zipfile.ZipFile(io.BytesIO(response.content))
    data = json.loads(files.read("data.json"))
    assert data["schema"] == "backoffice.customer-data/1"
    assert data["customer_id"] == customer.pk
    sections = data["sections"]
    assert sections["profile"][0]["email"] == EMAIL
    assert sections["profile"][0]["last_name"] == LAST
    assert [(a["line1"], a["city"]) for a in sections["addresses"]] == [(STREET, CITY)]
    orders = {o["number"]: o for o in sections["orders"]}
    assert set(orders) == {o.number for o in person.orders}
    for order in person.orders:
        assert orders[order.number]["total"] == str(order.total)
        assert orders[order.number]["status"] == order.status
    assert {line["order_number"] for line in sections["order_lines"]} == set(orders)
    assert [n["text"] for n in sections["notes"]] == [NOTE, "Second version"]
    consents = [(c["channel"], c["granted"]) for c in sections["consents"]]
    assert ("email", True) in consents and ("push", True) in consents
    [subscription] = sections["push_subscriptions"]
    assert subscription["endpoint"] == ENDPOINT
    assert "p256dh" not in subscription and "auth" not in subscription
    assert b"BPk" + b"x" * 84 not in response.content  # the browser's keys are not exported
    [received] = sections["campaigns_received"]
    assert received["campaign_title"] == "Spring sale" and received["clicked_at"]
    assert [launch["device"] for launch in sections["launches"]] == ["ZorgPhone 12"]
    actions = {entry["action"] for entry in sections["change_history"]}
    assert {"contact_update", "note_save", "consent"} <= actions
    # Each section is also a CSV file with the same rows.
    for name, rows in sections.items():
        table = list(csv.DictReader(io.StringIO(files.read(f"{name}.csv").decode())))
        assert len(table) == len(rows), name
    assert "README.txt" in files.namelist()
    actions = list(
        AccessLogEntry.objects.filter(customer_id=customer.pk).values_list("action", flat=True)
    )
    assert "archive_request" in actions and "archive_download" in actions


def test_downloadable_once_by_the_requester_only(person, admin_client_role):
    archive = _request(admin_client_role, person.customer)
    other = Client()
    other.force_login(UserFactory(role="Admin"))
    assert _download(other, archive).status_code == 404
    assert other.get(reverse("privacy:archive-detail", args=[archive.pk])).status_code == 404
    assert _download(admin_client_role, archive).status_code == 200
    again = _download(admin_client_role, archive)
    assert again.status_code == 302
    archive.refresh_from_db()
    assert archive.status == ArchiveStatus.DOWNLOADED and bytes(archive.content) == b""
    assert _download(admin_client_role, DataArchive(pk=999999)).status_code == 404


@override_settings(PRIVACY_ARCHIVE_HOURS=2)
def test_an_archive_expires(person, admin_client_role):
    archive = _request(admin_client_role, person.customer)
    assert archive.expires_at - timezone.now() > timedelta(hours=1, minutes=59)
    DataArchive.objects.filter(pk=archive.pk).update(expires_at=timezone.now() - timedelta(1))
    assert _download(admin_client_role, archive).status_code == 302
    archive.refresh_from_db()
    assert archive.status == ArchiveStatus.EXPIRED and bytes(archive.content) == b""


@override_settings(PRIVACY_ARCHIVE_BACKGROUND_ROWS=3)
def test_a_big_customer_s_archive_is_built_in_the_background(
    person, admin_client_role, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        archive = _request(admin_client_role, person.customer)
    assert archive.status == ArchiveStatus.BUILDING
    page = admin_client_role.get(reverse("privacy:archive-detail", args=[archive.pk]))
    assert "being prepared" in page.content.decode()
    assert _download(admin_client_role, archive).status_code == 302
    assert len(callbacks) == 1
    callbacks[0]()  # the worker runs the task (the test backend runs it at once)
    archive.refresh_from_db()
    assert archive.status == ArchiveStatus.READY
    assert _download(admin_client_role, archive).status_code == 200
