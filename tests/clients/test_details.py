"""Details of the client page a new user tripped over (issue 17): rounded chart labels, one
phone format, the contact form's order, country names, "Edit", long emails."""

from datetime import date
from decimal import Decimal

import pytest
from django.core import signing
from django.urls import reverse

from backoffice.phones import phone_international
from backoffice.templatetags.formatting import email_link
from clients.forms import AddressForm, ContactForm
from clients.views.client_page import spend_chart
from tests.clients.test_client_page import add_address, contact_url, hidden_fields, page_url
from tests.factories import CustomerFactory, make_order

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("amount", "label"),
    [("64.70", "65"), ("64.49", "64"), ("64.50", "65"), ("0.40", "0"), ("1299.50", "1,300")],
)
def test_chart_labels_are_rounded_not_cut(amount, label):
    months = [(date(2026, m, 1), Decimal(0)) for m in range(1, 12)]
    chart = spend_chart([*months, (date(2026, 12, 1), Decimal(amount))])
    assert chart["bars"][-1].text == label


def test_the_page_shows_the_rounded_label(staff_client):
    customer = CustomerFactory()
    make_order(customer, total="64.70")
    html = staff_client.get(page_url(customer)).text
    assert ">65</text>" in html and ">64</text>" not in html


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("06 12 34 56 78", "+33 6 12 34 56 78"),
        ("0612345678", "+33 6 12 34 56 78"),
        ("+33612345678", "+33 6 12 34 56 78"),
        ("+33 (0)6 12 34 56 78", "+33 6 12 34 56 78"),
        ("+44 20 7946 0018", "+44 20 7946 0018"),
        ("+1 (650) 253-0000", "+1 650-253-0000"),
        ("", ""),
    ],
)
def test_phones_are_stored_in_one_international_format(typed, stored):
    for form_class in (ContactForm, AddressForm):
        form = form_class({"phone": typed})
        form.is_valid()
        assert "phone" not in form.errors, form.errors
        assert form.cleaned_data["phone"] == stored


@pytest.mark.parametrize("typed", ["12345", "+33 1", "06 12 34"])
def test_a_number_that_is_no_phone_number_is_refused(typed):
    form = ContactForm({"phone": typed})
    assert not form.is_valid()
    assert "not a valid phone number" in str(form.errors["phone"])


def test_older_rows_are_shown_in_the_same_format(staff_client):
    customer = CustomerFactory(phone="06.12.34.56.78")
    add_address(customer, phone="0033612345678")
    html = staff_client.get(page_url(customer)).text
    assert "+33 6 12 34 56 78" in html and "0033612345678" not in html
    assert "06.12.34.56.78" not in html
    # Anything that is not a number is shown as it was typed rather than lost.
    assert phone_international("ask the concierge") == "ask the concierge"


def test_the_contact_form_keeps_the_read_views_order(staff_client):
    customer = CustomerFactory(phone="+33 6 12 34 56 78")
    read = staff_client.get(page_url(customer)).text
    labels = ["First name", "Last name", "Phone", "Email"]
    positions = [read.index(f"<dt>{label}</dt>") for label in labels]
    assert positions == sorted(positions)
    form = staff_client.get(contact_url(customer)).text
    fields = [form.index(f'name="{name}"') for name in ("first_name", "last_name", "phone")]
    fields.append(form.index('name="email"'))
    assert fields == sorted(fields)
    # The saved number comes back formatted.
    data = {**hidden_fields(form), "first_name": "A", "last_name": "B", "phone": "0612345679"}
    staff_client.post(contact_url(customer), data)
    customer.refresh_from_db()
    assert customer.phone == "+33 6 12 34 56 79"


def test_addresses_name_the_country_in_the_users_language(staff_client):
    customer = CustomerFactory()
    add_address(customer, country="DE")
    english = staff_client.get(page_url(customer), headers={"accept-language": "en"}).text
    french = staff_client.get(page_url(customer), headers={"accept-language": "fr"}).text
    assert "Germany" in english and "Allemagne" not in english
    assert "Allemagne" in french


def test_addresses_are_edited_with_edit_and_modifier(staff_client):
    customer = CustomerFactory()
    add_address(customer)
    english = staff_client.get(page_url(customer), headers={"accept-language": "en"}).text
    assert ">Edit</a>" in english and "Correct" not in english
    french = staff_client.get(page_url(customer), headers={"accept-language": "fr"}).text
    assert ">Modifier</a>" in french and "Corriger" not in french
    assert "Modifier l’adresse par défaut" in french


def test_long_emails_wrap_after_the_at_and_before_dots():
    html = email_link("jean-baptiste.de-la-fontaine@example.co.uk")
    assert html == (
        '<a href="mailto:jean-baptiste.de-la-fontaine@example.co.uk">jean<wbr>-baptiste<wbr>'
        ".de<wbr>-la<wbr>-fontaine@<wbr>example<wbr>.co<wbr>.uk</a>"
    )
    assert "<script>" not in email_link("<script>@x.y")


def test_the_client_page_links_the_email(staff_client):
    customer = CustomerFactory(email="a.very.long.address@example.com")
    html = staff_client.get(reverse("clients:client-detail", args=[customer.pk])).text
    assert 'href="mailto:a.very.long.address@example.com"' in html


@pytest.mark.parametrize(
    ("typed", "valid"), [("fr", True), ("DE", True), ("ZZ", False), ("XX", False), ("qo", False)]
)
def test_an_address_country_must_be_a_country(typed, valid):
    # Any two letters were saved (QA: "ZZ" and "XX" in the address book and the history).
    data = {
        "version": 0,
        "base": signing.dumps({}, salt="clients.forms.base"),
        "name": "Ada",
        "line1": "1 rue de la Paix",
        "postal_code": "75002",
        "city": "Paris",
        "country": typed,
    }
    form = AddressForm(data=data)
    assert form.is_valid() is valid, form.errors
    if not valid:
        assert form.errors["country"] == [
            f"{typed.upper()} is no country's code: enter an ISO code, e.g. FR, DE, US."
        ]
