"""The fingerprint the permission and hostile-input tests compare before and after each
request (tests/routes.py) sees every change to a row, and nothing else."""

from datetime import timedelta

import pytest
from django.utils import timezone

from clients.models import Customer
from privacy.models import DataArchive
from tests.factories import CustomerFactory, UserFactory, make_order
from tests.routes import FINGERPRINTED, fingerprint

pytestmark = pytest.mark.django_db


def _changed(before: dict, after: dict) -> set[str]:
    return {label for label in FINGERPRINTED if before[label] != after[label]}


def test_a_change_of_any_value_shows_in_its_table_only():
    customer = CustomerFactory(first_name="Ada", phone="")
    order = make_order(customer, total="10.00")
    before = fingerprint()
    assert fingerprint() == before  # reading changes nothing
    Customer.objects.filter(pk=customer.pk).update(first_name="Adb")
    assert _changed(before, fingerprint()) == {"clients.Customer"}
    Customer.objects.filter(pk=customer.pk).update(first_name="Ada")
    assert fingerprint() == before  # the same values again: the same fingerprint
    # A NULL set and cleared; values that read alike once joined ("Ad" + "a…", "Ada" + "…").
    Customer.objects.filter(pk=customer.pk).update(second_last_order_at=timezone.now())
    assert _changed(before, fingerprint()) == {"clients.Customer"}
    Customer.objects.filter(pk=customer.pk).update(second_last_order_at=None)
    Customer.objects.filter(pk=customer.pk).update(
        first_name="Ad", last_name="a" + customer.last_name
    )
    assert _changed(before, fingerprint()) == {"clients.Customer"}
    Customer.objects.filter(pk=customer.pk).update(first_name="Ada", last_name=customer.last_name)
    assert fingerprint() == before
    order.lines.update(quantity=7)
    assert _changed(before, fingerprint()) == {"orders.OrderLine"}
    order.lines.all().delete()
    assert _changed(before, fingerprint()) == {"orders.OrderLine"}


def test_bytes_that_are_not_text_are_compared_too():
    # A data archive is a ZIP file kept in the database: not UTF-8, which SQLite could not read
    # as text.
    now = timezone.now()
    archive = DataArchive.objects.create(
        customer=CustomerFactory(),
        requested_by=UserFactory(),
        requested_at=now,
        expires_at=now + timedelta(hours=1),
        content=b"PK\x05\x06\xff" + b"\x00" * 17,
    )
    before = fingerprint()
    DataArchive.objects.filter(pk=archive.pk).update(content=b"PK\x05\x06\xfe" + b"\x00" * 17)
    assert _changed(before, fingerprint()) == {"privacy.DataArchive"}


def test_a_new_row_shows_and_a_log_in_does_not():
    user = UserFactory()
    before = fingerprint()
    user.last_login = timezone.now()
    user.save(update_fields=["last_login"])
    assert fingerprint() == before
    UserFactory()
    assert _changed(before, fingerprint()) == {"auth.User"}
