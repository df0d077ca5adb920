"""bench_lifecycle runs end to end on a small shop: writes through the order services, the
recompute (its result applied), the pages."""

from io import StringIO

import pytest
from django.core.management import call_command

from clients.models import Customer
from lifecycle.models import Thresholds
from tests.factories import CustomerFactory, make_order

pytestmark = pytest.mark.django_db


def test_bench_lifecycle_writes_recomputes_and_times_the_pages():
    for _ in range(3):
        make_order(CustomerFactory())
    CustomerFactory()
    out = StringIO()
    call_command("bench_lifecycle", "--writes", "2", "--pages", "1", stdout=out, stderr=StringIO())
    text = out.getvalue()
    assert "writes: 2 place + pay pairs" in text
    assert "recompute: 3 clients" in text and Thresholds.objects.exists()
    assert "dashboard: median" in text and "clients, group lost: median" in text
    assert "(constant: True)" in text
    assert Customer.objects.filter(orders_count=2).count() >= 1  # the orders it paid count
