"""The customer's address book through the API ("My addresses")."""

import pytest

from clients.models import Address, AuditEntry, Customer
from tests.factories import AddressFactory, CustomerFactory
from tests.storefront.conftest import assert_problem

pytestmark = pytest.mark.django_db

HOME = {
    "name": "Ada Lovelace",
    "line1": "12 rue de la Paix",
    "postal_code": "75002",
    "city": "Paris",
    "country": "fr",
}


def test_first_address_becomes_both_defaults(api):
    customer = CustomerFactory()
    response = api.post(f"/customers/{customer.pk}/addresses", HOME)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["country"] == "FR" and body["default_billing"] and body["default_shipping"]
    assert response["Location"] == f"/api/v1/customers/{customer.pk}/addresses/{body['id']}"
    customer.refresh_from_db()
    assert customer.country == "FR" and customer.default_billing_address_id == body["id"]
    entry = AuditEntry.objects.get(customer=customer)
    assert (entry.action, entry.origin) == ("address_create", "customer")


def test_second_address_as_default_shipping_only(api):
    customer = CustomerFactory()
    first = api.post(f"/customers/{customer.pk}/addresses", HOME).json()
    second = api.post(
        f"/customers/{customer.pk}/addresses",
        {**HOME, "city": "Berlin", "country": "DE", "default_shipping": True},
    ).json()
    assert second["default_shipping"] and not second["default_billing"]
    listed = api.get(f"/customers/{customer.pk}/addresses").json()
    assert [(a["id"], a["default_billing"], a["default_shipping"]) for a in listed] == [
        (first["id"], True, False),
        (second["id"], False, True),
    ]


def test_update_and_delete(api):
    customer = CustomerFactory()
    address_id = api.post(f"/customers/{customer.pk}/addresses", HOME).json()["id"]
    response = api.patch(
        f"/customers/{customer.pk}/addresses/{address_id}", {"city": "Lyon", "country": "BE"}
    )
    assert response.status_code == 200, response.content
    assert Address.objects.get().city == "Lyon"
    assert Customer.objects.get(pk=customer.pk).country == "BE"
    response = api.delete(f"/customers/{customer.pk}/addresses/{address_id}")
    assert response.status_code == 204
    customer.refresh_from_db()
    assert not Address.objects.exists()
    assert customer.default_billing_address_id is None and customer.country == ""
    actions = set(AuditEntry.objects.filter(customer=customer).values_list("action", "origin"))
    assert ("address_delete", "customer") in actions and ("address_update", "customer") in actions


def test_another_customers_address_is_404(api):
    customer = CustomerFactory()
    foreign = AddressFactory()
    url = f"/customers/{customer.pk}/addresses/{foreign.pk}"
    assert_problem(api.get(url), 404, "not-found")
    assert_problem(api.patch(url, {"city": "X"}), 404, "not-found")
    assert_problem(api.delete(url), 404, "not-found")
    assert Address.objects.filter(pk=foreign.pk).exists()


def test_invalid_address_lists_every_field(api):
    customer = CustomerFactory()
    response = api.post(
        f"/customers/{customer.pk}/addresses",
        {"name": "", "line1": "a\x00b", "country": "France", "zip": "1"},
    )
    document = assert_problem(response, 422, "validation")
    assert {e["field"] for e in document["errors"]} == {
        "name",
        "line1",
        "postal_code",
        "city",
        "country",
        "zip",
    }
    assert not Address.objects.exists()


@pytest.mark.parametrize("value", [0, 1, "true", "yes", None])
def test_a_default_is_a_json_boolean(api, value):
    """The schema says boolean: 1, "true" or "yes" are refused rather than read as one."""
    customer = CustomerFactory()
    response = api.post(f"/customers/{customer.pk}/addresses", {**HOME, "default_shipping": value})
    document = assert_problem(response, 422, "validation")
    assert [error["field"] for error in document["errors"]] == ["default_shipping"]
    assert not Address.objects.exists()


@pytest.mark.parametrize("name", ["\u202e", "\ufeff", "Ada \u202eecalevoL", "\u2067Ada\u2069"])
def test_bidirectional_controls_and_a_bom_are_refused_in_a_name(api, name):
    """A name of U+202E alone was taken as filled in, and showed the rest of the back office's
    line reversed (the default-address choices); U+FEFF alone looked blank."""
    customer = CustomerFactory()
    response = api.post(f"/customers/{customer.pk}/addresses", {**HOME, "name": name})
    document = assert_problem(response, 422, "validation")
    assert [e["field"] for e in document["errors"]] == ["name"]
    assert not Address.objects.filter(customer=customer).exists()
    # Right-to-left names are welcome: only the controls are refused.
    arabic = api.post(f"/customers/{customer.pk}/addresses", {**HOME, "name": "ليلى"})
    assert arabic.status_code == 201, arabic.content
