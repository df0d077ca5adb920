"""Customer files as other platforms export them: what a shop owner expects imported, and a
per-row word for what is not."""

import pytest
from django.db import transaction

from clients.models import Customer
from imports import rows, services
from tests.factories import UserFactory
from tests.imports.conftest import apply, check, upload

pytestmark = pytest.mark.django_db


def _customers() -> dict[str, Customer]:
    return {
        c.email: c
        for c in Customer.objects.select_related(
            "default_billing_address", "default_shipping_address"
        )
    }


def _confirmed(job, date_order: str = "dmy"):
    """The job of a file of no known format, its columns as the page guessed them chosen."""
    with transaction.atomic():
        return services.import_set_mapping(job=job, mapping=job.mapping, date_order=date_order)


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
