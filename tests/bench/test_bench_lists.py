import json
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from clients.listing import SORTS
from orders.models import FINALIZED_STATUSES, Order
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
    for key in SORTS:
        assert f"clients, sort {key}" in cases and f"clients, sort -{key}" in cases
    for label in ("source", "medium", "push accepted", "country", "orders range"):
        assert f"clients, filter {label}" in cases
    assert any(c.startswith("clients, page ") for c in cases)
    assert any(c.startswith("clients, search email fragment") for c in cases)
    assert any(c.startswith("clients, search name fragment") for c in cases)
    assert any(c.startswith("clients, search phone") for c in cases)
    assert "leads, page 1" in cases and "client page, 5,000 orders" in cases
    # Issue 17's searches: the ID as written, digits that are an ID, surname first, and a
    # search on the Leads tab (which also counts the clients it matches).
    for label in ("client ID as written", "client ID digits", "surname first"):
        assert any(c.startswith(f"clients, search {label} ") for c in cases), label
    assert any(c.startswith("leads, search most common last name ") for c in cases)
    assert any(c.startswith("leads, search client ID as written ") for c in cases)
    for case in data["cases"]:
        assert case["requests"] == 2 and case["median_ms"] > 0 and case["queries"] > 0
        assert case["cpu_median_ms"] > 0
        assert case["queries_constant"]
    assert data["naive"]["median_ms"] > 0
    assert data["summary"]["ratio_naive_to_same_sort"] >= 0
    assert data["customers"]["clients"] >= 3  # the two buyers and the 5,000-order client
    out = capsys.readouterr().out
    assert "median ms" in out and "Naive / Clients tab sorted by total spent" in out

    # A second run reuses the client with 5,000 orders instead of adding another.
    call_command("bench_lists", "--repeat", "1", "--skip-naive", "--output", output)
    assert json.loads(output.read_text())["customers"] == data["customers"]
    # The data it added is what the order services would have recorded.
    call_command("rebuild_customer_stats", "--check")
    assert "0 had drifted" in capsys.readouterr().out


def test_bench_lists_measures_the_deep_page_after_a_burst_of_order_changes(
    buyers, tmp_path, capsys
):
    small, big = buyers
    for _ in range(3):
        make_order(big, status="pending")
    make_order(small, status="pending")
    finalized_before = Order.objects.filter(status__in=FINALIZED_STATUSES).count()
    output = tmp_path / "lists.json"
    call_command(
        "bench_lists",
        "--deep-page-only",
        "--updates",
        "4",
        "--autovacuum-wait",
        "0",
        "--repeat",
        "2",
        "--output",
        output,
    )
    data = json.loads(output.read_text())
    cases = [c["case"] for c in data["cases"]]
    assert len(cases) == 2 and cases[0].startswith("clients, page ")
    assert cases[1] == f"{cases[0]}, right after 4 order changes"
    assert data["naive"] is None
    # Four orders moved forward through the services (pending -> paid or paid -> fulfilled),
    # and the stored statistics followed.
    changed = Order.objects.filter(status__in=FINALIZED_STATUSES).count() - finalized_before
    assert changed <= 4 and Order.objects.filter(status="fulfilled").count() == 4 - changed
    call_command("rebuild_customer_stats", "--check")
    assert "0 had drifted" in capsys.readouterr().out


@pytest.mark.parametrize("option", ["--updates", "--autovacuum-wait"])
def test_bench_lists_refuses_negative_numbers(buyers, option):
    with pytest.raises(CommandError):
        call_command("bench_lists", "--deep-page-only", option, "-1")


def test_bench_deviations_compares_each_deviation_with_stock_django(buyers, tmp_path, capsys):
    output = tmp_path / "deviations.json"
    call_command("bench_deviations", "--repeat", "3", "--list-repeat", "2", "--output", output)
    data = json.loads(output.read_text())
    cases = {c["case"]: c for c in data["cases"]}
    assert len(cases) == 7
    for case in cases.values():
        for side in ("stock", "ours"):
            assert case[side]["calls"] > 0 and case[side]["median_us"] > 0
    # ModelBackend reads a user's own and group permissions in two queries; ours in one.
    permissions = cases["permissions of a Staff user"]
    assert (permissions["stock"]["queries"], permissions["ours"]["queries"]) == (2, 1)
    assert cases["session read"]["ours"]["queries"] == 1
    assert "session read: stock" in capsys.readouterr().out


def test_bench_lists_only_runs_the_cases_named(buyers, tmp_path):
    output = tmp_path / "lists.json"
    call_command("bench_lists", "--repeat", "1", "--only", "search", "--output", output)
    cases = [c["case"] for c in json.loads(output.read_text())["cases"]]
    assert cases and all("search" in c for c in cases)
    with pytest.raises(CommandError, match="No case matches"):
        call_command("bench_lists", "--only", "no such case", "--output", output)
