"""The client page's services: contact, default addresses, address corrections, note."""

import pytest

from clients.models import AuditEntry, Note
from clients.services import (
    Conflict,
    address_create,
    address_set_default,
    address_update,
    customer_contact_values,
    customer_update_contact,
    note_save,
)
from tests.factories import AddressFactory, CustomerFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff():
    return UserFactory(username="sam", role="Staff")


def _address(customer, **fields):
    values = {"name": "Home", "line1": "1 Main St", "postal_code": "1000", "city": "Brussels"}
    return address_create(customer=customer, **{"country": "BE", **values, **fields})


def test_contact_update_records_before_and_after(staff):
    customer = CustomerFactory(first_name="Ada", last_name="Lovelace", phone="")
    customer_update_contact(
        customer=customer,
        actor=staff,
        version=1,
        first_name="  Ada ",
        last_name="King",
        phone="+32 2 123 45 67",
    )
    customer.refresh_from_db()
    assert (customer.first_name, customer.last_name, customer.version) == ("Ada", "King", 2)
    entry = AuditEntry.objects.get()
    assert entry.actor == staff and entry.action == "contact_update"
    assert entry.changes == {"last_name": ["Lovelace", "King"], "phone": ["", "+32 2 123 45 67"]}


def test_contact_update_without_a_change_writes_nothing(staff):
    customer = CustomerFactory()
    values = customer_contact_values(customer)
    customer_update_contact(customer=customer, actor=staff, version=1, **values)
    customer.refresh_from_db()
    assert customer.version == 1 and not AuditEntry.objects.exists()


def test_contact_update_from_an_old_version_without_base_is_refused(staff):
    customer = CustomerFactory(first_name="Ada")
    customer_update_contact(
        customer=customer, actor=staff, version=1, first_name="Bea", last_name="", phone=""
    )
    with pytest.raises(Conflict) as raised:
        customer_update_contact(
            customer=customer, actor=staff, version=1, first_name="Cy", last_name="", phone=""
        )
    assert raised.value.by == "sam" and raised.value.at is not None
    customer.refresh_from_db()
    assert customer.first_name == "Bea"


def test_contact_conflict_lists_the_fields_changed_meanwhile(staff):
    customer = CustomerFactory(first_name="Ada", last_name="L", phone="1234")
    base = customer_contact_values(customer)
    customer_update_contact(
        customer=customer, actor=staff, version=1, first_name="Bea", last_name="L", phone="1234"
    )
    with pytest.raises(Conflict) as raised:
        customer_update_contact(
            customer=customer,
            actor=staff,
            version=1,
            base=base,
            first_name="Cy",
            last_name="L",
            phone="",
        )
    assert raised.value.changes == {"first_name": ["Ada", "Bea"]}


def test_default_addresses_must_belong_to_the_customer(staff):
    customer = CustomerFactory()
    home = _address(customer)
    with pytest.raises(ValueError):
        address_set_default(
            customer=customer, actor=staff, version=1, billing=AddressFactory(), shipping=home
        )
    customer.refresh_from_db()
    assert customer.default_billing_address_id == home.pk and customer.version == 1


def test_default_address_conflict_names_the_addresses(staff):
    customer = CustomerFactory()
    home, work = _address(customer), _address(customer, name="Work")
    base = {"default_billing_address": home.pk, "default_shipping_address": home.pk}
    address_set_default(
        customer=customer, actor=staff, version=1, base=base, billing=work, shipping=home
    )
    with pytest.raises(Conflict) as raised:
        address_set_default(
            customer=customer, actor=staff, version=1, base=base, billing=home, shipping=work
        )
    assert raised.value.changes == {"default_billing_address": [str(home), str(work)]}


def test_address_update_accepts_only_address_fields(staff):
    address = _address(CustomerFactory())
    with pytest.raises(TypeError):
        address_update(address=address, actor=staff, version=1, customer_id=999)
    with pytest.raises(Conflict):
        address_update(address=address, actor=staff, version=7, city="Ghent")
    address.refresh_from_db()
    assert address.city == "Brussels" and address.version == 1


def test_note_versions_are_appended_and_unchanged_text_adds_nothing(staff):
    customer = CustomerFactory()
    first = note_save(customer=customer, actor=staff, text="Likes tea", based_on=None)
    assert note_save(customer=customer, actor=staff, text="Likes tea ", based_on=first.pk) is None
    second = note_save(customer=customer, actor=staff, text="Likes coffee", based_on=first.pk)
    assert Note.objects.filter(customer=customer).count() == 2
    with pytest.raises(Conflict) as raised:
        note_save(customer=customer, actor=staff, text="Likes water", based_on=first.pk)
    assert raised.value.changes == {"note": ["Likes tea", "Likes coffee"]}
    assert raised.value.by == "sam" and raised.value.at == second.created_at
    with pytest.raises(Conflict):
        note_save(customer=customer, actor=staff, text="first!", based_on=None)
