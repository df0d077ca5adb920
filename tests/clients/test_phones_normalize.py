"""Phone numbers stored before they were normalized are rewritten in the international format
by clients migration 0015 (clients.services.phones_normalize); unreadable ones stay."""

import importlib
from datetime import timedelta

import pytest
from django.apps import apps
from django.utils import timezone

from clients.models import Address, Customer
from clients.search import customer_search_text
from clients.services import PhonesNormalized, phones_normalize
from tests.factories import AddressFactory, CustomerFactory

pytestmark = pytest.mark.django_db

MIGRATION = importlib.import_module("clients.migrations.0019_phones_international")

# As typed before the forms normalized them -> as stored after (the shop's country is FR).
READABLE = {
    "06 12 34 56 78": "+33 6 12 34 56 78",
    "0033612345679": "+33 6 12 34 56 79",
    "+33 (0)6 12 34 56 80": "+33 6 12 34 56 80",
    "+1 (650) 253-0000": "+1 650-253-0000",
    "+44 20 7946 0958": "+44 20 7946 0958",  # already in the format: not rewritten
}
# Not numbers, too short, or valid but longer than the column once formatted (33 characters).
UNREADABLE = ["call me", "12", "+33 1", "0612345678 ext. 1234567890"]


def _old_rows(phone: str, **fields) -> Customer:
    """A customer stored before phones were normalized, its search text from that time, last
    changed a month ago."""
    customer = CustomerFactory(phone=phone, **fields)
    Customer.objects.filter(pk=customer.pk).update(updated_at=timezone.now() - timedelta(days=30))
    customer.refresh_from_db()
    return customer


def test_readable_numbers_are_rewritten_and_unreadable_ones_stay_and_are_counted():
    customers = {phone: _old_rows(phone) for phone in [*READABLE, *UNREADABLE, ""]}
    twin = _old_rows("06 12 34 56 78", email="twin@example.com")  # one number, two rows
    address = AddressFactory(customer=customers["call me"], phone="06 98 76 54 32")
    kept_address = AddressFactory(customer=customers[""], phone="+33 1")
    AddressFactory(customer=customers[""], phone="")
    before = {c.pk: c.updated_at for c in Customer.objects.all()}

    done = phones_normalize()

    # 4 customers' numbers and the twin's change; the one in the format already does not.
    assert done == PhonesNormalized(customers=5, addresses=1, unparseable=len(UNREADABLE) + 1)
    for phone, customer in customers.items():
        customer.refresh_from_db()
        assert customer.phone == READABLE.get(phone, phone), phone
        # The search box matches the stored text: recomputed from the new number.
        fields = ("pk", "first_name", "last_name", "email", "phone")
        expected = customer_search_text(**{f: getattr(customer, f) for f in fields})
        assert customer.search_text == expected
        moved = phone in READABLE and READABLE[phone] != phone
        # Moved by an address of its own ("call me" owns the rewritten address).
        moved = moved or customer.pk == address.customer_id
        assert (customer.updated_at > before[customer.pk]) is moved, phone
    twin.refresh_from_db()
    assert twin.phone == "+33 6 12 34 56 78"
    address.refresh_from_db()
    kept_address.refresh_from_db()
    assert (address.phone, kept_address.phone) == ("+33 6 98 76 54 32", "+33 1")


def test_a_second_run_changes_nothing():
    for phone in [*READABLE, *UNREADABLE]:
        _old_rows(phone)
    # The customer's own number given too: the factory's sequence makes some numbers that
    # phonenumbers refuses (+33 6 91 …), which would count as one more unparseable.
    AddressFactory(phone="06 98 76 54 32", customer__phone="+33 6 12 34 56 78")
    phones_normalize()
    snapshot = list(Customer.objects.order_by("pk").values())

    assert phones_normalize() == PhonesNormalized(
        customers=0, addresses=0, unparseable=len(UNREADABLE)
    )
    assert list(Customer.objects.order_by("pk").values()) == snapshot


def test_batches_cover_every_number():
    phones = [f"06 12 34 56 {n:02d}" for n in range(7)]
    for phone in phones:
        _old_rows(phone)
    assert phones_normalize(batch_size=3).customers == 7
    assert sorted(Customer.objects.values_list("phone", flat=True)) == [
        f"+33 6 12 34 56 {n:02d}" for n in range(7)
    ]


def test_the_migration_runs_it_and_says_what_it_did(capsys):
    _old_rows("06 12 34 56 78")
    _old_rows("call me")
    MIGRATION.phones_international(apps, None)
    assert set(Customer.objects.values_list("phone", flat=True)) == {"+33 6 12 34 56 78", "call me"}
    out = capsys.readouterr().out
    assert "1 customers' and 0 addresses' rewritten" in out and "1 left as they were" in out


def test_the_migration_is_quiet_when_there_is_nothing_to_do(capsys):
    CustomerFactory(phone="+33 6 12 34 56 78")
    Address.objects.all().delete()
    MIGRATION.phones_international(apps, None)
    assert capsys.readouterr().out == ""
