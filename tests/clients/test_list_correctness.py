"""Every sort, filter and search of the Clients and Leads tabs against plain Python.

The dataset is a small demo shop (seed_demo), loaded once for the module: names with accents,
ties on every sortable column (many clients share a number of orders, leads share empty
values), several sources and countries. On PostgreSQL this runs the partial indexes and the
trigram index of clients/migrations/0004 with the tables' orderings.
"""

import re
from datetime import date, datetime

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.utils import timezone

from clients.listing import SORTS
from clients.models import Customer
from clients.paginators import CappedCountPaginator
from clients.search import normalize, phone_variants
from clients.selectors import DeepPageQuerySet
from lifecycle.models import GroupSnapshot, Thresholds
from orders.models import Order, OrderLine

ROW_ID = re.compile(r'<a href="/clients/(\d+)/">#')

SORT_FIELDS = {
    "id": ("id",),
    "name": ("last_name", "first_name", "id"),
    "last_order": ("last_order_at", "id"),
    "last_source": ("last_source", "last_medium", "id"),
    "total_spent": ("total_spent", "id"),
    "orders_count": ("orders_count", "id"),
    "created_at": ("created_at", "id"),
}


@pytest.fixture(scope="module")
def customers(django_db_setup, django_db_blocker):
    """The demo shop's customers as plain dicts (committed once for the module)."""
    with django_db_blocker.unblock():
        call_command("seed_demo", "--customers", "160", "--seed", "41", verbosity=0)
        rows = list(Customer.objects.values())
        yield rows
        Customer.objects.update(
            last_order=None, default_billing_address=None, default_shipping_address=None
        )
        OrderLine.objects.all().delete()
        Order.objects.all().delete()
        Customer.objects.all().delete()
        User.objects.filter(username="staff").delete()  # the demo notes' author
        # seed_demo also ran the lifecycle recompute: its thresholds and the day's counts.
        Thresholds.objects.all().delete()
        GroupSnapshot.objects.all().delete()


def _ids(client, url, **params) -> list[int]:
    """Every row id the tab shows for `params`, page after page (25 rows a page)."""
    ids, page = [], 1
    while True:
        response = client.get(url, {**params, "page": page, "per_page": 25})
        assert response.status_code == 200
        ids += [int(pk) for pk in ROW_ID.findall(response.content.decode())]
        table = response.context["listing"]
        if not table.page.has_next():
            assert table.paginator.count == len(ids)
            return ids
        page += 1


def _nameless(row) -> bool:
    return not row["first_name"] and not row["last_name"]


def _sorted(rows, sort: str) -> list[int]:
    fields = SORT_FIELDS[sort.removeprefix("-")]
    ordered = sorted(rows, key=lambda r: tuple(r[f] for f in fields))
    if sort.startswith("-"):
        ordered.reverse()
    if sort.removeprefix("-") == "name":
        # Customers without a name come last, whichever the direction.
        ordered.sort(key=_nameless)
    return [r["id"] for r in ordered]


def _clients(rows):
    return [r for r in rows if r["orders_count"] > 0]


def _leads(rows):
    return [r for r in rows if r["orders_count"] == 0]


def test_the_dataset_has_ties_to_break(customers):
    clients = _clients(customers)
    assert len({r["orders_count"] for r in clients}) < len(clients)
    assert len(_leads(customers)) > 25  # more than a page
    # Customers without a name in both tabs (they sort last by name, both ways).
    assert any(_nameless(r) for r in clients) and any(_nameless(r) for r in _leads(customers))


@pytest.mark.django_db
@pytest.mark.parametrize("sort", sorted(k for key in SORTS for k in (key, f"-{key}")))
def test_every_sort_both_ways_pages_through_the_python_order(viewer_client, customers, sort):
    assert set(SORT_FIELDS) == set(SORTS)
    assert _ids(viewer_client, "/clients/", sort=sort) == _sorted(_clients(customers), sort)
    assert _ids(viewer_client, "/clients/leads/", sort=sort) == _sorted(_leads(customers), sort)


def _local_date(moment: datetime | None) -> date | None:
    return timezone.localtime(moment).date() if moment else None


def _in_range(moment, start: date, end: date) -> bool:
    day = _local_date(moment)
    return day is not None and start <= day <= end


FILTERS = {
    "source": ({"source": "google"}, lambda r: r["last_source"] == "google"),
    "medium": ({"medium": "cpc"}, lambda r: r["last_medium"] == "cpc"),
    "spent": (
        {"spent_min": "100", "spent_max": "400.50"},
        lambda r: 100 <= r["total_spent"] <= 400.5,
    ),
    "orders": ({"orders_min": "2", "orders_max": "4"}, lambda r: 2 <= r["orders_count"] <= 4),
    "push": ({"push": "true"}, lambda r: r["push_opt_in"]),
    "no push": ({"push": "false"}, lambda r: not r["push_opt_in"]),
    "country": ({"country": "gb"}, lambda r: r["country"] == "GB"),
}


@pytest.mark.django_db
@pytest.mark.parametrize("name", FILTERS)
def test_each_filter_matches_python(viewer_client, customers, name):
    params, keep = FILTERS[name]
    expected = _sorted([r for r in _clients(customers) if keep(r)], "-last_order")
    assert expected, "the filter should keep someone"
    assert _ids(viewer_client, "/clients/", **params) == expected
    leads = _sorted([r for r in _leads(customers) if keep(r)], "-created_at")
    assert _ids(viewer_client, "/clients/leads/", **params) == leads


@pytest.mark.django_db
def test_date_range_filters_match_python(viewer_client, customers):
    clients = _clients(customers)
    days = sorted(_local_date(r["last_order_at"]) for r in clients)
    start, end = days[len(days) // 4], days[len(days) // 2]
    expected = [r for r in clients if _in_range(r["last_order_at"], start, end)]
    got = _ids(viewer_client, "/clients/", last_order_after=start, last_order_before=end)
    assert got == _sorted(expected, "-last_order")

    created = sorted(_local_date(r["created_at"]) for r in customers)
    start, end = created[10], created[60]
    expected = [r for r in clients if _in_range(r["created_at"], start, end)]
    got = _ids(viewer_client, "/clients/", created_after=start, created_before=end, sort="id")
    assert got == _sorted(expected, "id")


def _matches(row, query: str) -> bool:
    """The search box's promise in plain Python: "#295" is client 295; otherwise every word
    of the query is in the client ID, name, email or phone (as written or its digits in any
    form), in any order, ignoring case and accents; a phone-like query also matches any
    written form of the phone as a whole."""
    query = query.strip()
    if query.startswith("#") and query[1:].strip().isdigit():
        return row["id"] == int(query[1:].strip())
    fields = [str(row[f]) for f in ("id", "first_name", "last_name", "email", "phone")]
    fields += phone_variants(row["phone"])  # its digits, international and national
    words = [w.lstrip("#") or w for w in normalize(query).split()]
    if words and all(any(w in normalize(f) for f in fields) for w in words):
        return True
    digits = "".join(c for c in query if c.isdigit())
    phone_like = len(query) >= 4 and all(c.isdigit() or c in " +-.()/" for c in query)
    return bool(digits and phone_like) and any(digits in v for v in phone_variants(row["phone"]))


def _searched(rows, query: str, sort: str) -> list[int]:
    """The matches in the list's order, a client ID typed as digits first."""
    ids = _sorted([r for r in rows if _matches(r, query)], sort)
    if query.isdigit() and not query.startswith("0") and int(query) in ids:
        ids.remove(int(query))
        ids.insert(0, int(query))
    return ids


@pytest.mark.django_db
def test_searches_match_python(viewer_client, customers):
    with_name = next(r for r in customers if r["first_name"] and r["phone"])
    accented = next(
        (r for r in customers if normalize(r["last_name"]) != r["last_name"].lower()), with_name
    )
    national = "0" + "".join(c for c in with_name["phone"] if c.isdigit())[2:]
    queries = [
        with_name["email"].split("@")[0][2:8],  # e-mail fragment
        with_name["last_name"][1:4].upper(),  # name fragment, other case
        normalize(accented["last_name"])[:5],  # without accents
        with_name["phone"][-8:],  # phone as written
        national[:6],  # national form of an international number
        str(with_name["id"]),  # client ID
        f"#{with_name['id']}",  # client ID as the list writes it
        f"{with_name['last_name']} {with_name['first_name']}",  # surname first
        f"{with_name['first_name'][:3]} {with_name['email'][-6:]}".upper(),  # two fields
        "zzzz-nobody",
    ]
    # Digits that are a client ID and also in other customers' IDs, phones or e-mails.
    digit_queries = [str(r["id"]) for r in customers if r["id"] >= 10][:8]
    queries += [q for q in digit_queries if sum(_matches(r, q) for r in customers) > 1][:3]
    assert len(queries) > 10
    for query in queries:
        for tab, rows, sort in (
            ("/clients/", _clients(customers), "-last_order"),
            ("/clients/leads/", _leads(customers), "-created_at"),
            ("/clients/", _clients(customers), "name"),
        ):
            expected = _searched(rows, query, sort)
            assert _ids(viewer_client, tab, q=query, sort=sort) == expected, (tab, query)


@pytest.mark.django_db
def test_an_exact_client_id_ranks_first_past_the_count_cap(viewer_client, customers, monkeypatch):
    """Past the count cap the page comes from the sort index: the exact ID is still first
    and every match is listed once."""
    monkeypatch.setattr(CappedCountPaginator, "cap", 3)
    rows = _clients(customers)
    query = next(
        str(r["id"])
        for r in sorted(rows, key=lambda r: r["id"])
        if sum(_matches(x, str(r["id"])) for x in rows) > 4
    )
    for sort in ("-last_order", "id", "-id"):
        expected = _searched(rows, query, sort)
        assert expected[0] == int(query)
        ids, page = [], 1
        while True:
            response = viewer_client.get("/clients/", {"q": query, "sort": sort, "page": page})
            table = response.context["listing"]
            assert table.paginator.capped
            ids += [int(pk) for pk in ROW_ID.findall(response.content.decode())]
            if not table.page.has_next():
                break
            page += 1
        assert ids == expected, sort


@pytest.mark.django_db
def test_other_tab_counts_match_python(viewer_client, customers):
    for query in ("e", "ma", "gmail", "zzzz-nobody"):
        for tab, other in (
            ("/clients/", _leads(customers)),
            ("/clients/leads/", _clients(customers)),
        ):
            response = viewer_client.get(tab, {"q": query})
            expected = sum(_matches(r, query) for r in other)
            assert (response.context["listing"].other_tab or {}).get("count", 0) == expected, query


@pytest.mark.django_db
def test_tab_counts_are_the_python_counts(viewer_client, customers):
    response = viewer_client.get("/clients/")
    assert response.context["listing"].counts == {
        "clients": len(_clients(customers)),
        "leads": len(_leads(customers)),
    }


@pytest.mark.django_db
@pytest.mark.parametrize("sort", ["-last_order", "name", "-total_spent", "created_at"])
def test_deep_pages_read_by_ids_first_give_the_same_rows(
    viewer_client, customers, sort, monkeypatch
):
    monkeypatch.setattr(DeepPageQuerySet, "DEEP_OFFSET", 1)  # every page after the first
    assert _ids(viewer_client, "/clients/", sort=sort) == _sorted(_clients(customers), sort)
    assert _ids(viewer_client, "/clients/leads/", sort=sort) == _sorted(_leads(customers), sort)
    keep = FILTERS["no push"][1]
    expected = _sorted([r for r in _clients(customers) if keep(r)], sort)
    assert _ids(viewer_client, "/clients/", sort=sort, push="false") == expected


@pytest.mark.django_db
def test_capped_counts_page_through_every_match(viewer_client, customers, monkeypatch):
    monkeypatch.setattr(CappedCountPaginator, "cap", 30)
    keep = FILTERS["no push"][1]
    expected = _sorted([r for r in _clients(customers) if keep(r)], "-last_order")
    assert len(expected) > 50  # past the cap, over several pages
    ids, page = [], 1
    while True:
        response = viewer_client.get("/clients/", {"push": "false", "page": page})
        html = response.content.decode()
        table = response.context["listing"]
        assert table.paginator.capped
        assert "of more than 30" in html and "Last page" not in html
        ids += [int(pk) for pk in ROW_ID.findall(html)]
        if not table.page.has_next():
            break
        assert 'rel="next"' in html
        page += 1
    assert ids == expected
    response = viewer_client.get("/clients/", {"push": "false", "page": page + 1})
    assert response.status_code == 200
    assert f"Page {page + 1} does not exist; showing page 1." in response.content.decode()
    assert ROW_ID.findall(response.content.decode())[0] == str(expected[0])


@pytest.mark.django_db
@pytest.mark.parametrize("sort", sorted(SORTS) + [f"-{key}" for key in sorted(SORTS)])
def test_searches_count_and_page_in_one_pass_in_every_order(viewer_client, customers, sort):
    """A search reads its matches once for the count and the page (CappedCountPaginator's
    one pass): every sort, both ways, pages through exactly the Python result."""
    query = "e"  # in most names and e-mail addresses: several pages
    expected = _sorted([r for r in _clients(customers) if _matches(r, query)], sort)
    assert len(expected) > 50
    response = viewer_client.get("/clients/", {"q": query, "sort": sort})
    paginator = response.context["listing"].paginator
    assert paginator.one_pass and paginator.count == len(expected)
    assert _ids(viewer_client, "/clients/", q=query, sort=sort) == expected


@pytest.mark.django_db
def test_searches_past_the_cap_page_through_every_match(viewer_client, customers, monkeypatch):
    monkeypatch.setattr(CappedCountPaginator, "cap", 30)
    query = "e"
    expected = _sorted([r for r in _clients(customers) if _matches(r, query)], "-last_order")
    assert len(expected) > 50
    ids, page = [], 1
    while True:
        response = viewer_client.get("/clients/", {"q": query, "page": page})
        table = response.context["listing"]
        assert table.paginator.capped
        ids += [int(pk) for pk in ROW_ID.findall(response.content.decode())]
        if not table.page.has_next():
            break
        page += 1
    assert ids == expected
    # A page past the end of a search is reported, and the first page shown.
    response = viewer_client.get("/clients/", {"q": "zzzz-nobody", "page": 3})
    assert "Page 3 does not exist; showing page 1." in response.content.decode()
