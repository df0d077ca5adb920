"""The lifecycle pages (dashboard, Overdue), the group on the lists and the client page:
what they show, their query counts, permissions and hostile query strings."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format

from clients.models import Customer
from lifecycle.models import GroupSnapshot
from lifecycle.rules import Group
from lifecycle.services import lifecycle_recompute
from tests.factories import CustomerFactory, UserFactory, make_order

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)
DASHBOARD = reverse("lifecycle:dashboard")
OVERDUE = reverse("lifecycle:overdue")


def _with_orders(*days_ago, total="50.00", **names):
    customer = CustomerFactory(**names)
    now = timezone.now()
    for days in days_ago:
        make_order(customer, total=total, placed_at=now - days * DAY)
    return customer


def _late_by(days: int) -> int:
    """How many days late a next order expected `days` x 24 h ago is (or since an order
    placed then, in a lifecycle reason): calendar days in the
    shop's time zone, one fewer when a clock change lies between (96 for 97 x 24 h at 22:30
    UTC on 1 December, the expected moment falling on a summer-time day)."""
    now = timezone.now()
    return (timezone.localdate(now) - timezone.localdate(now - days * DAY)).days


def _queries(client, url) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200
    return len(ctx.captured_queries)


@pytest.mark.parametrize("url", [DASHBOARD, OVERDUE])
def test_the_pages_need_a_login_and_the_permission_to_read_customers(url):
    anonymous = Client().get(url)
    assert anonymous.status_code == 302 and "/login/" in anonymous["Location"]
    nobody = Client()
    nobody.force_login(UserFactory())  # no role
    assert nobody.get(url).status_code == 403
    for role in ("Viewer", "Staff", "Admin"):
        client = Client()
        client.force_login(UserFactory(role=role))
        assert client.get(url).status_code == 200


def test_the_dashboard_shows_each_group_now_and_its_change_since_30_days_ago(viewer_client):
    _with_orders(3, 1, 2, 4, total="200.00")  # champions (fallbacks: 4 orders, 800 spent)
    _with_orders(5)  # new
    CustomerFactory()  # prospect
    today = timezone.localdate()
    GroupSnapshot.objects.bulk_create(
        [
            GroupSnapshot(day=today - 31 * DAY, group=Group.NEW, customers=3),
            GroupSnapshot(day=today - 31 * DAY, group=Group.CHAMPIONS, customers=0),
            GroupSnapshot(day=today - 31 * DAY, group=Group.PROSPECTS, customers=1),
            # Older: not the one compared with.
            GroupSnapshot(day=today - 60 * DAY, group=Group.NEW, customers=50),
        ]
    )
    page = viewer_client.get(DASHBOARD).content.decode()
    rows = {
        group: page.split(f"badge-group-{group}")[1].split("</tr>")[0] for group in Group.values
    }
    assert ">1<" in rows[Group.NEW] and ">3<" in rows[Group.NEW] and "−2" in rows[Group.NEW]
    assert ">+1<" in rows[Group.CHAMPIONS]
    assert f"?group={Group.AT_RISK}" in page  # each group opens the Clients tab filtered
    assert "Fixed thresholds" in page


def test_the_dashboard_without_snapshots_says_so(viewer_client):
    page = viewer_client.get(DASHBOARD).content.decode()
    assert "No daily snapshot is old enough yet" in page


def test_the_dashboard_query_count_does_not_grow_with_customers(viewer_client):
    _with_orders(3)
    lifecycle_recompute()
    first = _queries(viewer_client, DASHBOARD)
    for days in (1, 50, 100, 400):
        _with_orders(days, days + 30)
        CustomerFactory()
    lifecycle_recompute()
    assert _queries(viewer_client, DASHBOARD) == first


def test_overdue_lists_clients_past_their_usual_pace_most_valuable_first(viewer_client):
    modest = _with_orders(100, 60, total="50.00", first_name="Modest")  # due 20 days ago
    big = _with_orders(100, 60, total="400.00", first_name="Big")  # same pace, 800 spent
    _with_orders(30, 5, first_name="Early")  # next order expected in 20 days
    _with_orders(800, 700, total="900.00", first_name="Gone")  # lost: not a daily task
    _with_orders(90, first_name="Once")  # one order: no pace of its own
    page = viewer_client.get(OVERDUE).content.decode()
    assert page.index("Big") < page.index("Modest")
    for absent in ("Early", "Gone", "Once"):
        assert absent not in page
    assert f"overdue by {_late_by(20)} days" in page and "usually every 40 days" in page
    assert "Rows 1–2 of 2" in page
    # Same order for two customers of the same value: the newer id first (stable pages).
    twin = _with_orders(100, 60, total="50.00", first_name="Twin")
    page = viewer_client.get(OVERDUE).content.decode()
    assert page.index("Twin") < page.index("Modest")
    assert twin.pk > modest.pk and big.pk


def test_overdue_query_count_does_not_grow_with_rows(viewer_client):
    _with_orders(100, 60)
    first = _queries(viewer_client, OVERDUE)
    for total in ("10.00", "20.00", "30.00", "40.00"):
        _with_orders(120, 70, total=total)
    assert _queries(viewer_client, OVERDUE) == first


@pytest.mark.parametrize(
    "query",
    [
        "page=abc",
        "page=-1",
        "page=0",
        "page=99999",
        "page=1e3",
        "page=%00",
        "page=" + "9" * 40,
        "page=1&page=2",
        "page=%C3%A9",
        "sort=../../etc",
    ],
)
def test_overdue_survives_hostile_query_strings(viewer_client, query):
    _with_orders(100, 60)
    response = viewer_client.get(f"{OVERDUE}?{query}")
    assert response.status_code == 200
    assert b"Rows 1\xe2\x80\x931 of 1" in response.content


def test_the_lists_show_the_group_and_filter_on_it(viewer_client):
    champion = _with_orders(3, 1, 2, 4, total="200.00", first_name="Champ")
    newcomer = _with_orders(5, first_name="Newbie")
    page = viewer_client.get(reverse("clients:client-list")).content.decode()
    assert ">Group<" in page and ">Champions<" in page and ">New<" in page
    filtered = viewer_client.get(reverse("clients:client-list") + "?group=champions")
    text = filtered.content.decode()
    assert champion.email in text and newcomer.email not in text
    bogus = viewer_client.get(reverse("clients:client-list") + "?group=%3Cscript%3E")
    assert bogus.status_code == 200
    text = bogus.content.decode()
    assert "Some filters were ignored" in text and "&lt;script&gt;" in text
    # The invalid filter is left out: every client is listed.
    assert champion.email in text and newcomer.email in text


def test_the_client_page_explains_the_group_and_the_expected_next_order(viewer_client):
    customer = _with_orders(142 + 45, 142, total="300.00")
    page = viewer_client.get(customer.get_absolute_url()).content.decode()
    assert "At risk" in page
    assert f"no order for {_late_by(142)} days, usually orders every 45 days" in page
    expected = timezone.localdate(timezone.now() - 97 * DAY)
    assert "Expected next order" in page and f"overdue by {_late_by(97)} days" in page
    assert date_format(expected, "SHORT_DATE_FORMAT") in page
    lead = CustomerFactory()
    page = viewer_client.get(lead.get_absolute_url()).content.decode()
    assert "Prospects: no order yet" in page and "Expected next order" not in page
    assert Customer.objects.get(pk=customer.pk).lifecycle_group == Group.AT_RISK


def test_overdue_stops_at_the_most_valuable_and_pages_through_them(viewer_client, monkeypatch):
    from lifecycle import views

    monkeypatch.setattr(views, "OVERDUE_LIMIT", 3)
    monkeypatch.setattr(views, "OVERDUE_PER_PAGE", 2)
    for i, total in enumerate(("10.00", "20.00", "30.00", "40.00", "50.00")):
        _with_orders(100, 60, total=total, first_name=f"Client{i}")
    first = viewer_client.get(OVERDUE).content.decode()
    assert "Client4" in first and "Client3" in first and "Client2" not in first
    assert "Rows 1–2 of 3" in first and "the 3 most valuable are listed" in first
    second = viewer_client.get(OVERDUE + "?page=2").content.decode()
    assert "Client2" in second and "Client1" not in second and "Client0" not in second
    past = viewer_client.get(OVERDUE + "?page=9").content.decode()
    assert "Page 9 does not exist; showing page 2." in past and "Client2" in past


def test_a_push_to_the_filtered_customers_takes_the_groups_members_only():
    from clients.selectors import customer_audience

    at_risk = _with_orders(187, 142, total="300.00")
    champion = _with_orders(3, 1, 2, 4, total="200.00")
    Customer.objects.filter(pk__in=[at_risk.pk, champion.pk]).update(push_opt_in=True)
    audience = customer_audience(tab="clients", audience="filtered", ids=[], query="group=at_risk")
    assert list(audience.values_list("pk", flat=True)) == [at_risk.pk]
    with pytest.raises(ValueError):
        customer_audience(tab="clients", audience="filtered", ids=[], query="group=everyone")


def test_a_client_not_grouped_yet_is_explained_as_the_recompute_will_decide(viewer_client):
    customer = _with_orders(142 + 45, 142, total="300.00")
    # As right after the upgrade, before the first recompute: every customer a prospect.
    Customer.objects.filter(pk=customer.pk).update(lifecycle_group=Group.PROSPECTS)
    page = viewer_client.get(customer.get_absolute_url()).content.decode()
    assert f"At risk: no order for {_late_by(142)} days, usually orders every 45 days" in page
    assert "Prospects" not in page.split("lifecycle-line")[1].split("</p>")[0]


def test_overdue_counts_calendar_days_in_the_shops_time_zone():
    """Late means past the expected day: not yet on that day itself, one day late the next
    morning (it said "overdue by 0 days" between the two)."""
    from datetime import datetime, time

    from lifecycle.selectors import customer_lifecycle, overdue_customers

    expected_day = timezone.localdate() - 3 * DAY
    nine = timezone.make_aware(datetime.combine(expected_day, time(9)))
    customer = CustomerFactory()
    for days in (40, 20):  # every 20 days: expected on expected_day at 09:00
        make_order(customer, total="50.00", placed_at=nine - days * DAY)
    customer.refresh_from_db()
    same_day = nine + timedelta(hours=11)
    next_morning = nine + timedelta(hours=23)
    assert customer_lifecycle(customer, now=same_day).overdue_days is None
    assert customer not in overdue_customers(now=same_day)
    assert customer_lifecycle(customer, now=next_morning).overdue_days == 1
    assert customer in overdue_customers(now=next_morning)
    assert customer_lifecycle(customer, now=nine + 10 * DAY).overdue_days == 10
