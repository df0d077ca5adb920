import json
from decimal import Decimal

import pytest
from django.core.management import call_command

from clients.tables import SORT_KEYS
from tests.factories import AddressFactory, CustomerFactory, make_order

pytestmark = pytest.mark.django_db

NAIVE_URL = "/django-admin/bench/customernaive/"


@pytest.fixture
def buyers():
    small, big = CustomerFactory(last_name="Small"), CustomerFactory(last_name="Big")
    AddressFactory(customer=small, country="GB")
    make_order(small, total="10.00")
    make_order(big, total="70.00")
    make_order(big, total="30.00", refunded="5.00")
    make_order(big, total="999.00", status="cancelled")
    CustomerFactory(last_name="Lead")
    return small, big


def test_naive_admin_aggregates_orders_per_request_biggest_spender_first(admin_client, buyers):
    small, big = buyers
    response = admin_client.get(NAIVE_URL)
    assert response.status_code == 200
    rows = list(response.context["cl"].result_list)
    assert [c.pk for c in rows[:2]] == [big.pk, small.pk]
    assert (rows[0].naive_orders, rows[0].naive_spent) == (2, Decimal("95.00"))
    assert rows[0].naive_spent == big.__class__.objects.get(pk=big.pk).total_spent


def test_naive_admin_is_for_superusers_only(staff_client, admin_client, buyers):
    assert staff_client.get(NAIVE_URL).status_code in (302, 403)
    small, _ = buyers
    change = f"{NAIVE_URL}{small.pk}/change/"
    assert admin_client.post(change, {"email": "x@example.com"}).status_code == 403
    assert admin_client.post(f"{NAIVE_URL}add/", {}).status_code == 403


def test_bench_lists_measures_every_case_and_writes_json(buyers, tmp_path, capsys):
    output = tmp_path / "lists.json"
    call_command("bench_lists", "--repeat", "2", "--naive-repeat", "1", "--output", output)
    data = json.loads(output.read_text())
    cases = [c["case"] for c in data["cases"]]
    for key in SORT_KEYS:
        assert f"clients, sort {key}" in cases and f"clients, sort -{key}" in cases
    for label in ("source", "medium", "push accepted", "country", "orders range"):
        assert f"clients, filter {label}" in cases
    assert any(c.startswith("clients, page ") for c in cases)
    assert any(c.startswith("clients, search email fragment") for c in cases)
    assert any(c.startswith("clients, search name fragment") for c in cases)
    assert any(c.startswith("clients, search phone") for c in cases)
    assert "leads, page 1" in cases and "client page, 5,000 orders" in cases
    for case in data["cases"]:
        assert case["requests"] == 2 and case["median_ms"] > 0 and case["queries"] > 0
        assert case["queries_constant"]
    assert data["naive"]["median_ms"] > 0
    assert data["summary"]["ratio_naive_to_same_sort"] >= 0
    assert data["customers"]["clients"] >= 3  # the two buyers and the 5,000-order client
    out = capsys.readouterr().out
    assert "median ms" in out and "Naive / Clients tab sorted by total spent" in out

    # A second run reuses the client with 5,000 orders instead of adding another.
    call_command("bench_lists", "--repeat", "1", "--skip-naive", "--output", output)
    assert json.loads(output.read_text())["customers"] == data["customers"]
