"""The capped counts of the lists and the side panel (segments.selectors.capped_count_sql):
counting a one-tag filter through the tag's carriers finds what a plain computation over
the customers finds, whichever branch answers (all carriers sampled, sample too sparse,
the cap reached, the bound reached), on both databases."""

from datetime import timedelta

import pytest
from django.db import connection
from django.http import QueryDict
from django.utils import timezone

from clients.filters import CustomerFilter
from clients.models import Customer
from clients.selectors import TABS
from segments import selectors
from segments.selectors import capped_count, segment_counts
from segments.services import segment_create
from tags.models import CustomerTag, Tag
from tests.factories import CustomerFactory, UserFactory

pytestmark = pytest.mark.django_db

RECENT = "recent_orders_min=1&recent_orders_days=180"


@pytest.fixture
def carriers_always(monkeypatch):
    """PostgreSQL plans a small table's count without hashing the carriers: take the
    carriers' branch on both databases."""
    monkeypatch.setattr(selectors, "hashes_carriers", lambda *args: True)


def _shop(rows):
    """Customers from (client, ordered days ago, opened a push, source, tags) rows; the
    customers' stored columns as the order and click services write them."""
    now = timezone.now()
    tags = {name: Tag.objects.create(name=name, created_at=now, updated_at=now) for name in "ABC"}
    people = []
    for client, days_ago, opened, source, names in rows:
        customer = CustomerFactory()
        Customer.objects.filter(pk=customer.pk).update(
            orders_count=1 if client else 0,
            last_order_at=now - timedelta(days=days_ago) if client else None,
            push_opened=opened,
            last_source=source,
        )
        CustomerTag.objects.bulk_create(
            CustomerTag(customer=customer, tag=tags[name]) for name in names
        )
        people.append((customer.pk, client, days_ago, opened, source, set(names)))
    return tags, people


def _expected(people, *, tab, tag, recent=False, never_opened=False, source=None):
    return sum(
        1
        for _pk, client, days_ago, opened, src, names in people
        if (client if tab == "clients" else not client)
        and tag in names
        and (not recent or (client and days_ago <= 180))
        and (not never_opened or not opened)
        and (source is None or src == source)
    )


def _count(query, tab, cap):
    filterset = CustomerFilter(QueryDict(query), queryset=Customer.objects.filter(TABS[tab]))
    assert filterset.is_valid(), filterset.errors
    return capped_count(filterset, cap)


def test_counting_through_a_tag_agrees_with_the_customers(carriers_always):
    # 40 customers: clients and leads, recent and old orders, pushes opened or not, two
    # sources, "A" on most, "B" on a few, "C" on the first client only.
    rows = []
    for n in range(40):
        client = n % 5 != 4
        names = ["A"] * (n % 7 != 3) + ["B"] * (n % 9 == 0) + ["C"] * (n == 0)
        rows.append((client, 10 if n % 3 else 400, n % 4 == 1, "rare" if n == 17 else "", names))
    tags, people = _shop(rows)
    for tab in ("clients", "leads"):
        for name in "ABC":
            tag = tags[name].pk
            cases = {
                f"tags_any={tag}&{RECENT}&opened_push=never": {
                    "recent": True,
                    "never_opened": True,
                },
                f"tags_any={tag}&opened_push=never": {"never_opened": True},
                f"tags_any={tag}&source=rare": {"source": "rare"},
                f"tags_any={tag}&{RECENT}": {"recent": True},
            }
            for query, conditions in cases.items():
                expected = _expected(people, tab=tab, tag=name, **conditions)
                for cap in (1, 2, 3, 5, 8, 40):
                    assert _count(query, tab, cap) == min(expected, cap + 1), (tab, query, cap)


def test_the_bound_hands_over_to_the_plain_count(carriers_always):
    """The first carrier matches (so the sample goes on), then none of the next ones up to
    the bound (8 × (cap + 1) carriers), then two more: the plain count answers, exactly."""
    cap = 1
    bound = selectors.MIN_SHARE * (cap + 1)
    rows = [(True, 10, False, "", ["A"])]
    rows += [(True, 10, True, "", ["A"])] * (bound + 3)
    rows += [(True, 10, False, "", ["A"])] * 2
    tags, _people = _shop(rows)
    query = f"tags_any={tags['A'].pk}&opened_push=never"
    assert _count(query, "clients", cap) == 2
    assert _count(query, "clients", 2) == 3
    assert _count(query, "clients", 3) == 3


def test_the_side_panel_counts_through_the_tag_too(carriers_always):
    rows = [(True, 10, n % 2 == 0, "", ["A"]) for n in range(9)]
    tags, people = _shop(rows)
    query = f"tags_any={tags['A'].pk}&opened_push=never"
    segment = segment_create(actor=UserFactory(), name="Never opened", tab="clients", query=query)
    count, _cap = segment_counts([segment])[segment.pk]
    assert count == _expected(people, tab="clients", tag="A", never_opened=True) == 4


@pytest.mark.parametrize(
    "query, through_tag",
    [
        ("tags_any={a}&opened_push=never", True),
        ("tags_any={a}", False),  # alone: the tab's index merged with the tag's
        ("tags_any={a}&tags_any={b}&opened_push=never", False),
        ("tags_any={a}&tags_none={b}&opened_push=never", False),  # another table
        ("tags_any={a}&product=silk", False),
        ("tags_any={a}&q=mar", False),  # the search: from its own index
        ("tags_any={a}&recent_orders_min=5&recent_orders_days=30", True),
        ("tags_any={a}&recent_orders_min=10&recent_orders_days=30", True),
        ("tags_any={a}&recent_orders_max=9&recent_orders_days=30", True),
        ("tags_any={a}&recent_orders_min=11&recent_orders_days=30", False),  # reads orders
        ("tags_any={a}&recent_orders_max=10&recent_orders_days=30", False),
        ("opened_push=never", False),
    ],
)
def test_which_filters_count_through_a_tag(query, through_tag):
    tags, _people = _shop([])
    filterset = CustomerFilter(
        QueryDict(query.format(a=tags["A"].pk, b=tags["B"].pk)), queryset=Customer.objects.all()
    )
    assert (filterset.count_through_tag() is not None) == through_tag


def test_the_list_counts_through_the_tag(carriers_always, viewer_client, monkeypatch):
    from segments.filters import SegmentFilters

    monkeypatch.setattr(SegmentFilters, "RELATED_COUNT_CAP", 2)
    tags, _people = _shop([(True, 10, False, "", ["A"])] * 3 + [(True, 10, True, "", ["A"])])
    query = f"tags_any={tags['A'].pk}&opened_push=never"
    assert "of more than 2" in viewer_client.get(f"/clients/?{query}").text
    monkeypatch.setattr(SegmentFilters, "RELATED_COUNT_CAP", 3)
    assert "of 3" in viewer_client.get(f"/clients/?{query}").text


def test_the_planner_is_asked_whether_it_hashes_the_carriers():
    """The real check (an EXPLAIN on PostgreSQL) answers for a count of a small table too."""
    tags, _people = _shop([(True, 10, False, "", ["A"])])
    filterset = CustomerFilter(
        QueryDict(f"tags_any={tags['A'].pk}&opened_push=never"), queryset=Customer.objects.all()
    )
    assert filterset.is_valid()
    assert capped_count(filterset, 10) == 1


def test_the_counts_are_planned_with_their_values_each_time():
    """PostgreSQL: a capped count is never a prepared statement, so never run on a generic
    plan (which cannot use the tab's partial indexes nor see the period's date:
    backoffice.planning); the connection prepares other statements as before (the EXPLAIN
    that chooses how to count plans with the values it is given)."""
    if connection.vendor != "postgresql":
        pytest.skip("prepared statements are PostgreSQL's")
    tags, _people = _shop([(True, 10, False, "", ["A"])])
    query = f"tags_any={tags['A'].pk}&recent_orders_min=5&recent_orders_days=30"
    threshold = connection.connection.prepare_threshold
    for _ in range(12):
        assert _count(query, "clients", 1000) == 0
        assert _count(RECENT, "clients", 1000) == 1
    assert connection.connection.prepare_threshold == threshold
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s",
            ["SELECT %COUNT(*)%"],
        )
        assert cursor.fetchone()[0] == 0
