"""Customer files as other platforms export them: what a shop owner expects imported, and a
per-row word for what is not."""

from datetime import UTC, datetime

import pytest
from django.db import transaction
from django.utils import timezone

from clients.models import Customer
from imports import rows, services
from imports.models import ImportFormat
from privacy.models import ConsentRecord
from tests.factories import UserFactory
from tests.imports.conftest import FILES, apply, check, reasons, upload

pytestmark = pytest.mark.django_db


def _customers() -> dict[str, Customer]:
    return {
        c.email: c
        for c in Customer.objects.select_related(
            "default_billing_address", "default_shipping_address"
        )
    }


def _confirmed(job):
    """The job of a file of no known format, its columns and date order as the columns page
    guessed them chosen."""
    with transaction.atomic():
        return services.import_set_mapping(job=job, mapping=job.mapping, date_order=job.date_order)


def _imported(name: str, *, recognized: str = ImportFormat.MANUAL):
    """Upload a fixture, check it (its guessed columns confirmed) and apply it."""
    job = upload(name)
    assert job.format == recognized
    if recognized == ImportFormat.MANUAL:
        job = _confirmed(job)
    job = check(job)
    apply(job, UserFactory(role="Admin"))
    return job


def _notes(job) -> dict[int, list]:
    """{line: [[code, value], ...]} of the rows imported with a note."""
    return {
        row.line: row.reasons
        for row in job.rows.exclude(action="refused").exclude(reasons=[]).order_by("ordinal")
    }


def test_a_shopify_customer_with_a_partial_address_is_imported_without_it(admin_client_role):
    # Real Shopify files have customers who gave only a country, a street and no city, a
    # province and a zip: the customer is imported, the address (street, city and country
    # needed) is not, and the row says so.
    job = check(upload("shopify_customers_partial_addresses.csv"))
    assert job.counts == {"create": 4, "noted": 3}
    assert _notes(job) == {
        2: [["incomplete_address", "FR"]],
        3: [["incomplete_address", "Nørregade 10, 1165, DK"]],
        4: [["incomplete_address", "40202, KY"]],
    }
    apply(job, UserFactory(role="Admin"))
    found = _customers()
    elodie = found["elodie.marchand@example.fr"]
    assert (elodie.first_name, elodie.last_name, elodie.email_consent) == (
        "Élodie",
        "Marchand",
        True,
    )
    assert elodie.phone == "+33 6 12 34 56 78"  # read in the address's country all the same
    assert elodie.default_billing_address is None and not elodie.addresses.exists()
    mary = found["mary.obrien@example.com"]
    assert (mary.last_name, mary.phone) == ("O'Brien", "+1 502-625-1199")
    assert mary.default_billing_address is None
    assert found["soren@example.dk"].default_billing_address is None
    luis = found["luis.pena@example.es"].default_billing_address
    assert (luis.line1, luis.line2, luis.city, luis.country, luis.postal_code) == (
        "Calle Mayor 5",
        "2º B",
        "Madrid",
        "ES",
        "28013",
    )
    page = admin_client_role.get(job.get_absolute_url(), headers={"accept-language": "en"})
    text = page.content.decode()
    assert 'data-testid="noted-rows"' in text and 'data-testid="count-noted">3<' in text
    assert "Address not imported, incomplete" in text and "Nørregade 10, 1165, DK" in text


def test_a_partial_address_leaves_the_stored_one_as_it_is():
    admin = UserFactory(role="Admin")
    apply(check(upload("shopify_customers_export.csv")), admin)
    stored = Customer.objects.get(email="amelie.poulain@example.fr").default_billing_address
    data = (
        b"First Name,Last Name,Email,Accepts Email Marketing,Default Address Address1,"
        b"Default Address City,Default Address Country Code,Total Spent,Total Orders\n"
        b"Am\xc3\xa9lie,Poulain,amelie.poulain@example.fr,yes,15 rue des Trois Fr\xc3\xa8res,,FR,"
        b"120.50,3\n"
    )
    job = check(upload("partial.csv", data=data))
    assert job.counts == {"unchanged": 1, "noted": 1}
    apply(job, admin)
    customer = Customer.objects.get(email="amelie.poulain@example.fr")
    assert customer.default_billing_address == stored and stored.city == "Paris"


def test_a_note_is_worded():
    assert (
        str(rows.REASONS["incomplete_shipping_address"])
        % {"value": "FR"}
        == "Shipping address not imported, incomplete (a street, a city and a country are "
        "needed): FR"
    )


@pytest.mark.parametrize(
    ("cell", "order", "expected"),
    [
        ("3/15/2024 2:30 PM", "mdy", (2024, 3, 15, 14, 30, 0)),
        ("03/15/2024 02:30:15 pm", "mdy", (2024, 3, 15, 14, 30, 15)),
        ("3/5/2024 12:05 AM", "mdy", (2024, 3, 5, 0, 5, 0)),
        ("3/5/2024 12:05 PM", "mdy", (2024, 3, 5, 12, 5, 0)),
        ("3/5/2024 11:59 p.m.", "mdy", (2024, 3, 5, 23, 59, 0)),
        ("15/03/2024 9:01AM", "dmy", (2024, 3, 15, 9, 1, 0)),
        ("1/2/24 7:00 PM", "dmy", (2024, 2, 1, 19, 0, 0)),
    ],
)
def test_a_twelve_hour_time_is_read(cell, order, expected):
    from django.utils import timezone

    found = timezone.localtime(rows.moment(cell, date_order=order))
    assert found.timetuple()[:6] == expected


@pytest.mark.parametrize("cell", ["3/15/2024 14:30 PM", "3/15/2024 0:30 AM", "3/15/2024 2:30 XM"])
def test_an_impossible_twelve_hour_time_is_refused(cell):
    with pytest.raises(rows.Refused) as refused:
        rows.moment(cell, date_order="mdy")
    assert refused.value.code == "invalid_date"


def test_twelve_hour_times_tell_the_file_s_day_and_month_order():
    assert rows.date_orders(["3/15/2024 2:30 PM", "12/1/2024 9:00 AM"]) == (True, {"mdy"})
    assert rows.date_orders(["15/3/2024 2:30 PM"]) == (True, {"dmy"})
    data = (
        b"Email,First Name,Last Name,Create Date\r\n"
        b"ada@example.com,Ada,Lovelace,3/15/2024 2:30 PM\r\n"
        b"bob@example.com,Bob,Lee,12/01/2024 09:00:05 am\r\n"
    )
    job = upload("contacts.csv", data=data)
    assert job.date_order == "mdy" and job.mapping[-1] == "created_at"


def test_a_single_name_column_fills_first_and_last_name():
    # Stripe's customers export has one "Name"; address books and lists "Full Name".
    data = (
        b"Email,Full Name\r\n"
        b"ada@example.com,Ada   Lovelace\r\n"
        b"jean@example.fr,Jean de La Fontaine\r\n"
        b'grace@example.com,"Hopper, Grace"\r\n'
        b"cher@example.com,Cher\r\n"
        b"nobody@example.com,\r\n"
    )
    job = upload("list.csv", data=data)
    assert job.mapping == ["email", "full_name"]
    apply(check(_confirmed(job)), UserFactory(role="Admin"))
    names = {c.email: (c.first_name, c.last_name) for c in Customer.objects.all()}
    assert names == {
        "ada@example.com": ("Ada", "Lovelace"),
        "jean@example.fr": ("Jean", "de La Fontaine"),
        "grace@example.com": ("Grace", "Hopper"),
        "cher@example.com": ("Cher", ""),
        "nobody@example.com": ("", ""),
    }


def test_a_full_name_too_long_for_one_field_is_split_before_it_is_checked():
    first, last = "A" * 100, "B" * 100
    row = rows.customer_row(["email", "full_name"], ["a@example.com", f"{first} {last}"])
    assert (row.values["first_name"], row.values["last_name"], row.refusals) == (first, last, {})


def _local(customer: Customer) -> tuple:
    return timezone.localtime(customer.created_at).timetuple()[:5]


def test_stripe_customers_export():
    job = _imported("stripe_customers.csv")
    assert job.mapping[2:5] == ["email", "full_name", "created_at_utc"]
    assert job.counts == {"create": 4, "refused": 1}
    assert reasons(job) == {4: "no_email"}  # a guest's customer object without an email
    found = _customers()
    amelie = found["amelie.poulain@example.fr"]
    assert (amelie.first_name, amelie.last_name) == ("Amélie", "Poulain")
    # "Created (UTC)": a UTC time, whatever the shop's time zone.
    assert amelie.created_at == datetime(2024, 3, 15, 14, 30, tzinfo=UTC)
    assert found["john.smith@example.com"].last_name == "Smith"
    assert found["john.smith@example.com"].created_at == datetime(2023, 11, 5, 8, 5, 9, tzinfo=UTC)
    assert (
        found["mary.obrien@example.com"].first_name,
        found["mary.obrien@example.com"].last_name,
    ) == (
        "Mary",
        "O'Brien",
    )
    assert found["cher@example.com"].first_name == ""
    assert not any(c.external_id for c in found.values())  # Stripe's ids are not the shop's


def test_wix_contacts_export():
    job = _imported("wix_contacts.csv")
    assert job.counts == {"create": 3, "noted": 1}
    assert _notes(job) == {3: [["incomplete_address", "Lee & Co, Louisville, KY, US"]]}
    found = _customers()
    helene = found["helene.dupre@example.fr"]
    assert (helene.first_name, helene.last_name, helene.phone) == (
        "Hélène",
        "Dupré",
        "+33 6 12 34 56 78",
    )
    assert (helene.email_consent, helene.sms_consent) == (True, False)  # "Never subscribed"
    assert helene.created_at == datetime(2024, 3, 15, 9, 30, tzinfo=UTC)  # "(UTC+0)"
    address = helene.default_billing_address
    assert (address.line1, address.line2, address.postal_code, address.city, address.country) == (
        "12 rue de l'Église",
        "Bât. B",
        "69002",
        "Lyon",
        "FR",
    )
    bob = found["bob.lee@example.com"]
    assert (bob.email_consent, bob.phone, bob.default_billing_address) == (
        False,
        "+1 502-625-1199",
        None,
    )
    zoe = found["zoe@example.com"]
    assert (zoe.first_name, zoe.last_name, zoe.email_consent) == ("Zoë", "", False)


def test_hubspot_contacts_export():
    job = upload("hubspot_contacts.csv")
    assert job.date_order == "mdy"  # "3/15/2024 2:30 PM" and "12/1/2023 12:05 AM"
    job = check(_confirmed(job))
    assert job.counts == {"create": 3, "noted": 1}
    assert _notes(job) == {3: [["incomplete_address", "Madrid, Spain"]]}
    apply(job, UserFactory(role="Admin"))
    found = _customers()
    ada = found["ada@example.com"]
    assert _local(ada) == (2024, 3, 15, 14, 30)
    address = ada.default_billing_address
    assert (address.line1, address.postal_code, address.city, address.country) == (
        "12 St James's Square",
        "SW1Y 4LB",
        "London",
        "GB",
    )
    jose = found["jose.garcia@example.es"]
    assert (jose.first_name, jose.phone, jose.default_billing_address) == (
        "José",
        "+34 612 34 56 78",
        None,
    )
    assert _local(jose) == (2023, 12, 1, 0, 5)
    grace = found["grace@example.com"]
    assert grace.first_name == 'Grace "Amazing"' and _local(grace) == (2024, 1, 31, 23, 59)
    # "Marketing contact status" is HubSpot's billing status, not a consent.
    assert not ConsentRecord.objects.exists()


def test_klaviyo_profiles():
    job = _imported("klaviyo_profiles.csv")
    assert job.counts == {"create": 3}
    found = _customers()
    ann = found["ann.bee@example.com"]
    assert (ann.first_name, ann.phone, ann.email_consent, ann.sms_consent) == (
        "Ann",
        "+44 7911 123456",
        True,
        False,
    )
    francois = found["francois@example.fr"]
    assert (francois.last_name, francois.email_consent, francois.sms_consent) == (
        "Pérignon",
        False,
        False,
    )
    assert not ConsentRecord.objects.filter(customer=francois, channel="sms").exists()
    sms = found["sms.only@example.com"]
    assert (sms.email_consent, sms.sms_consent, sms.phone) == (False, True, "+33 6 12 34 56 78")
    # Its file has a town and a country but no street: no address, nothing to note.
    assert not any(c.default_billing_address for c in found.values())


def test_bigcommerce_customers_export():
    job = _imported("bigcommerce_customers.csv")
    assert job.counts == {"create": 3}
    found = _customers()
    amelie = found["amelie.poulain@example.fr"]
    assert (amelie.external_id, amelie.first_name, amelie.phone) == (
        "101",
        "Amélie",
        "+33 1 42 00 00 00",
    )
    assert _local(amelie) == (2024, 3, 15, 0, 0)
    john = found["john.smith@example.com"]
    assert (john.external_id, john.phone) == ("102", "+1 502-625-1199")
    # "Receive Review/Abandoned Cart Emails?" is no marketing consent.
    assert not ConsentRecord.objects.exists()
    assert found["nina.mueller@example.de"].last_name == "Müller"


def test_squarespace_contacts_export():
    job = _imported("squarespace_profiles.csv", recognized=ImportFormat.SQUARESPACE)
    assert job.counts == {"create": 3, "noted": 1}
    assert _notes(job) == {4: [["incomplete_address", "United States"]]}
    found = _customers()
    amelie = found["amelie.poulain@example.fr"]
    assert (amelie.email_consent, amelie.phone) == (True, "+33 1 42 00 00 00")
    assert _local(amelie) == (2024, 3, 15, 0, 0)
    assert amelie.default_billing_address.city == amelie.default_shipping_address.city == "Paris"
    assert found["subscriber@example.com"].email_consent is True
    john = found["john.smith@example.com"]
    # Its billing details are only a country (not imported, noted): its one address is the
    # shipping one, which serves as the default for both.
    assert john.email_consent is False and john.addresses.count() == 1
    shipping = john.default_shipping_address
    assert (shipping.line1, shipping.line2, shipping.city, shipping.region, shipping.country) == (
        "Chestnut Street 92",
        "Apartment 2",
        "Louisville",
        "KY",
        "US",
    )


def test_a_squarespace_file_is_not_taken_for_woocommerce():
    # It has WooCommerce's signature columns (Email, Billing Address 1, Billing Country).
    from imports.formats import recognize

    headers = (FILES / "squarespace_profiles.csv").read_text().splitlines()[0].split(",")
    assert recognize("customers", headers)[0] == ImportFormat.SQUARESPACE
    woo = (FILES / "woocommerce_customers.csv").read_text().splitlines()[0].split(",")
    assert recognize("customers", woo)[0] == ImportFormat.WOOCOMMERCE


def test_a_later_file_moves_customer_since_back_never_forward():
    # A customer already here (an earlier file, the API) whose platform says they signed up
    # before: "Customer since" takes the earlier date; a later one leaves it.
    from tests.factories import CustomerFactory

    early = CustomerFactory(email="early@example.com")
    late = CustomerFactory(email="late@example.com")
    stored = late.created_at
    data = (
        "Email,Name,Created (UTC)\r\n"
        "early@example.com,Ada Early,2024-02-29 10:00\r\n"
        f"late@example.com,Bob Late,{(stored + timezone.timedelta(days=1)):%Y-%m-%d %H:%M}\r\n"
    ).encode()
    job = upload("stripe_like.csv", data=data)
    job = check(_confirmed(job))
    assert job.counts.get("update") == 2  # the names; the first one's date too
    apply(job, UserFactory(role="Admin"))
    early.refresh_from_db()
    late.refresh_from_db()
    assert early.created_at == datetime(2024, 2, 29, 10, 0, tzinfo=UTC)
    assert late.created_at == stored
    history = early.audit_entries.get(action="import").changes
    assert history["created_at"][1].startswith("2024-02-29T10:00:00")
