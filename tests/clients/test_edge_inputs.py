"""List filters, page numbers and push audiences at the edges of what the database, Python's
datetime and the shop's time zone can represent: a message, never a 500."""

import pytest
from django.urls import reverse

from tests.factories import CustomerFactory, make_order

pytestmark = pytest.mark.django_db

TABS = ("clients:client-list", "clients:lead-list")
EDGE_DATES = ["0001-01-01", "0001-01-02", "9999-12-31", "9999-12-30", "1-1-1", "10000-01-01"]
TIME_ZONES = ["Europe/Paris", "America/Los_Angeles", "Pacific/Kiritimati", "UTC"]


@pytest.fixture
def shop():
    client = CustomerFactory(first_name="Ana", last_name="Able")
    make_order(client, total="10.00")
    CustomerFactory(first_name="Lea", last_name="Lead")


@pytest.mark.parametrize("zone", TIME_ZONES)
@pytest.mark.parametrize("field", ["last_order", "created"])
def test_edge_dates_in_filters(viewer_client, shop, settings, zone, field):
    settings.TIME_ZONE = zone
    for tab in TABS:
        for date in EDGE_DATES:
            for suffix in ("after", "before"):
                response = viewer_client.get(reverse(tab), {f"{field}_{suffix}": date})
                assert response.status_code == 200, (tab, date, suffix)


HUGE_PAGES = [2**31, 2**63 // 25, 2**63 // 25 + 2, 2**63, 10**30, 10**4000]


@pytest.fixture
def capped(monkeypatch):
    """Lists whose searches and filters count at most 2 rows, so 3 customers overflow it."""
    from clients.paginators import CappedCountPaginator

    monkeypatch.setattr(CappedCountPaginator, "cap", 2)
    for i in range(3):
        make_order(CustomerFactory(first_name=f"Max{i}", last_name="Many"), total="5.00")


@pytest.mark.parametrize(
    "query",
    [{}, {"source": "google"}, {"orders_min": "1"}, {"q": "many"}, {"q": "many", "sort": "name"}],
    ids=["whole tab", "filter, no match", "filter", "search", "search sorted"],
)
def test_absurd_page_numbers_give_a_page(viewer_client, capped, query):
    for page in HUGE_PAGES:
        response = viewer_client.get(reverse("clients:client-list"), {**query, "page": page})
        assert response.status_code == 200, page
        assert "does not exist" in response.text or "is not a valid" in response.text, page


@pytest.mark.parametrize("zone", TIME_ZONES)
def test_edge_dates_in_push_audiences(admin_client_role, shop, settings, zone):
    settings.TIME_ZONE = zone
    for date in EDGE_DATES:
        for key in ("last_order_after", "last_order_before", "created_after", "created_before"):
            response = admin_client_role.get(
                reverse("notifications:campaign-create"),
                {"tab": "clients", "audience": "filtered", "query": f"{key}={date}"},
            )
            assert response.status_code in (200, 400), (date, key)
            if response.status_code == 400:
                assert "not valid" in response.text


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"spent_min": "100", "spent_max": "10"}, "The maximum is below the minimum."),
        ({"orders_min": "5", "orders_max": "2"}, "The maximum is below the minimum."),
        (
            {"last_order_after": "2025-06-01", "last_order_before": "2025-01-01"},
            "The first date is after the second.",
        ),
        ({"created_after": "2025-06-01", "created_before": "2025-05-31"}, "after the second"),
        ({"country": "ZZ"}, "No country has the code “ZZ”."),
        ({"country": "qq"}, "No country has the code “QQ”."),
    ],
)
def test_impossible_ranges_say_so(viewer_client, shop, query, message):
    response = viewer_client.get(reverse("clients:client-list"), query)
    assert response.status_code == 200
    assert "Some filters were ignored" in response.text
    assert message in response.text
    # The impossible filter is left out: the list is not emptied by it.
    assert "Able" in response.text


def test_impossible_ranges_refuse_a_push_audience(admin_client_role, shop):
    response = admin_client_role.get(
        reverse("notifications:campaign-create"),
        {"tab": "clients", "audience": "filtered", "query": "spent_min=100&spent_max=10"},
    )
    assert response.status_code == 400
    assert "The maximum is below the minimum." in response.text


def test_equal_bounds_and_real_countries_still_filter(viewer_client, shop):
    response = viewer_client.get(
        reverse("clients:client-list"), {"orders_min": "1", "orders_max": "1", "country": "fr"}
    )
    assert "Some filters were ignored" not in response.text


def test_a_malformed_country_gets_one_message(viewer_client, shop):
    response = viewer_client.get(reverse("clients:client-list"), {"country": "1é"})
    assert "Enter a two-letter country code." in response.text
    assert "No country has the code" not in response.text


@pytest.mark.parametrize("field", ["push", "email_consent", "sms_consent"])
def test_a_yes_no_filter_with_another_value_is_reported_not_read_as_any(viewer_client, field):
    # `push=yes` listed every customer without a word (read as "any").
    accepted = CustomerFactory(push_opt_in=True, email_consent=True, sms_consent=True)
    make_order(accepted, total="10.00")
    refused = CustomerFactory(push_opt_in=False, email_consent=False, sms_consent=False)
    make_order(refused, total="10.00")
    url = reverse("clients:client-list")
    bad = viewer_client.get(url, {field: "yes"}).text
    assert "Some filters were ignored" in bad and "yes is not one of the available" in bad
    for value, shown, hidden in (("true", accepted, refused), ("false", refused, accepted)):
        page = viewer_client.get(url, {field: value}).text
        assert "Some filters were ignored" not in page
        assert f"/clients/{shown.pk}/" in page and f"/clients/{hidden.pk}/" not in page
