"""Our export imported back changes nothing: every customer is `unchanged`, none refused, even
when what we store would no longer pass the import's checks (older data: phones the 0019
normalization could not read, text a spreadsheet would take for a formula, an address without
a city), in English and French, CSV and XLSX, through the export pages themselves."""

from datetime import UTC, datetime

import pytest

from clients.models import Customer
from clients.services import address_create
from exports.models import Export
from imports.models import ImportFormat
from imports.services import import_set_mapping
from privacy.models import ConsentRecord, ConsentSource
from privacy.services import consent_record
from tests.factories import CustomerFactory, UserFactory, make_order
from tests.imports.conftest import apply, check, reasons, upload

pytestmark = pytest.mark.django_db


def _address(customer, *, billing=True, shipping=False, **fields):
    address = address_create(customer=customer, name="Name", **fields)
    if billing:
        customer.default_billing_address = address
    if shipping:
        customer.default_shipping_address = address
    customer.save(update_fields=["default_billing_address", "default_shipping_address"])
    return address


@pytest.fixture
def stored(settings, tmp_path):
    """Customers as a shop's database holds them, the odd older values included."""
    settings.STORAGES = {
        **settings.STORAGES,
        "exports": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": tmp_path / "exports"},
        },
    }
    zoe = CustomerFactory(
        first_name="Zoé",
        last_name="Lefèvre",
        email="zoe@example.com",
        phone="06 12 34 56 78",  # valid, never normalized (typed before 0019)
        external_id="7012345678901",
        created_at=datetime(2024, 1, 15, 8, 30, 45, tzinfo=UTC),
    )
    # Company and region are not in our export: they must not count as changes.
    _address(
        zoe,
        company="Atelier Zoé",
        line1="12 rue des Lilas; bât. B",
        line2='Escalier "C"\nporte 2',
        postal_code="75011",
        city="Paris",
        region="Île-de-France",
        country="FR",
    )
    _address(
        zoe,
        billing=False,
        shipping=True,
        line1="3 Kurfürstendamm",
        postal_code="10719",
        city="Berlin",
        country="de",
    )
    make_order(zoe, total="1234.50", number="K1")  # a client; a decimal comma in French
    consent_record(customer=zoe, channel="email", granted=True, source=ConsentSource.STOREFRONT)
    # A demo-style US number whose area code phonenumbers refuses (28% of the demo base).
    us = CustomerFactory(email="Bob.Norman@Example.com", phone="+1 (200) 555-0199")
    _address(us, line1="1 Main St", postal_code="10001", city="New York", region="NY", country="US")
    # Too short to be a number, with a Belgian address (read in Belgium: still refused).
    CustomerFactory(email="short@example.com", phone="0612")
    _address(
        Customer.objects.get(email="short@example.com"),
        line1="Rue Haute 5",
        postal_code="1000",
        city="Bruxelles",
        country="BE",
    )
    # Text a spreadsheet would run as a formula (the export makes it inert), an address with
    # surrounding spaces and no postal code that passes.
    hostile = CustomerFactory(
        email="hostile@example.com",
        first_name='=HYPERLINK("http://evil.example","x")',
        last_name="+SUM(1,2)",
        phone="-2+3",
        external_id="@cmd|' /C calc'!A0",
    )
    _address(
        hostile,
        line1="\tTAB",
        line2="\rCR",
        postal_code="=1+1",
        city="Multi\nline, city",
        country="FR",
    )
    make_order(hostile, total="10.00", number="H1")
    # Older data: an address without a city, a name longer than the import takes, an email
    # Django's validator refuses.
    old = CustomerFactory(email="old..style@example.com", phone="", last_name="L" * 150 + " ")
    _address(old, line1="Lieu-dit les Combes", postal_code="", city="", country="FR")
    CustomerFactory(email="Helene.Martin@Example.FR", first_name="Hélène", phone="")
    return Customer.objects.count()


def _snapshot():
    return (
        list(Customer.objects.order_by("pk").values()),
        list(ConsentRecord.objects.order_by("pk").values()),
    )


def _export(client, django_capture_on_commit_callbacks, *, tab, language, file_format) -> bytes:
    fields = {"tab": tab, "scope": "all", "file_format": file_format}
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/exports/new/", fields, headers={"accept-language": language})
    if file_format == "csv":
        return b"".join(response.streaming_content)
    record = Export.objects.latest("pk")
    download = client.get(f"/exports/{record.pk}/download/")
    assert download.status_code == 200
    return b"".join(download.streaming_content)


@pytest.mark.parametrize("file_format", ["csv", "xlsx"])
@pytest.mark.parametrize("language", ["en", "fr"])
def test_our_export_imported_back_is_unchanged(
    viewer_client, stored, language, file_format, django_capture_on_commit_callbacks
):
    admin = UserFactory(role="Admin")
    before = _snapshot()
    counts = {}
    for tab in ("clients", "leads"):
        data = _export(
            viewer_client,
            django_capture_on_commit_callbacks,
            tab=tab,
            language=language,
            file_format=file_format,
        )
        job = check(upload(f"{tab}.{file_format}", data=data))
        assert job.format == ImportFormat.OURS
        assert reasons(job) == {}
        for action, n in job.counts.items():
            counts[action] = counts.get(action, 0) + n
        job = apply(job, admin)
        assert {action: n for action, n in job.applied_counts.items() if n} == job.counts
    assert counts == {"unchanged": stored}
    assert _snapshot() == before


def test_a_changed_value_next_to_an_unreadable_stored_one_is_still_imported():
    # Bob's stored first name is set: Faker's is "Robert" about once in a thousand runs.
    bob = CustomerFactory(email="bob@example.com", first_name="Bobby", phone="+1 (200) 555-0199")
    carl = CustomerFactory(email="carl@example.com", phone="+33 6 12 34 56 78")
    data = (
        b"Email,First Name,Phone\n"
        b"bob@example.com,Robert,+1 (200) 555-0199\n"  # the stored phone: left alone
        b"new@example.com,Ann,+1 (200) 555-0199\n"  # a new customer's: refused
        b"carl@example.com,Carl,+1 (200) 555-0100\n"  # not the stored one: refused
    )
    job = upload("mixed.csv", data=data)
    job = import_set_mapping(job=job, mapping=["email", "first_name", "phone"], date_order="dmy")
    job = check(job)
    assert reasons(job) == {3: "invalid_phone", 4: "invalid_phone"}
    row = job.rows.get(line=2)
    assert (row.action, row.changes) == ("update", {"first_name": ["Bobby", "Robert"]})
    assert "phone" not in row.values
    apply(job, UserFactory(role="Admin"))
    bob.refresh_from_db()
    carl.refresh_from_db()
    assert (bob.first_name, bob.phone) == ("Robert", "+1 (200) 555-0199")
    assert carl.phone == "+33 6 12 34 56 78"
