"""A search alone (words in the search box, no filter) runs SQL compiled once per shape of
search (clients.listing.CompiledSearch, clients.selectors.search_match_count): the same
statements, with the same parameters, as the list builds for it itself, and the same rows."""

import contextlib
import re
from datetime import timedelta
from unittest import mock
from urllib.parse import urlencode

import pytest
from django.db import connection
from django.db.models.sql.compiler import SQLCompiler
from django.http import QueryDict
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from clients.filters import CustomerFilter
from clients.listing import SORTS, CompiledSearch, sorted_customers
from clients.paginators import COUNT_CAP, one_pass_matches, one_pass_rows
from clients.search import parse_query
from clients.selectors import customer_list, customer_match_count, search_match_count
from tests.factories import CustomerFactory, make_order

pytestmark = pytest.mark.django_db

# Words with LIKE's special characters, accents, a phone number, an id, several words.
SEARCHES = [
    "garcia",
    "Éloïse Ardent",
    "100%",
    "a_b",
    "back\\slash",
    "06 12 34 56 78",
    "+33 6 12",
    "295",
    "0612",
    "ben brook shop",
    "#295 garcia",
    "o'neil",
]
# One word; LIKE's special characters; words and their digits; three words.
SHAPES = ["garcia", "100%", "06 12 34 56 78", "ben brook shop"]
EVERY_SORT = [prefix + name for name in SORTS for prefix in ("", "-")]


@pytest.fixture
def customers():
    now = timezone.now()
    found = [
        CustomerFactory(first_name="Éloïse", last_name="Ardent", phone="+33 6 12 34 56 78"),
        CustomerFactory(first_name="Ben", last_name="Brook", email="ben@shop.co.uk"),
        CustomerFactory(last_name="Garcia", email="100%@example.com"),
        CustomerFactory(last_name="O'Neil", email="a_b@example.com"),
        CustomerFactory(last_name="Back\\slash", first_name="", phone=""),
        CustomerFactory(last_name="Garcia", email="garcia295@example.com"),
    ]
    for days, customer in enumerate(found[:4]):
        make_order(customer, placed_at=now - timedelta(days=days + 1))
    return found


def _filterset(tab: str, text: str) -> CustomerFilter:
    filterset = CustomerFilter(QueryDict(urlencode({"q": text})), queryset=customer_list(tab=tab))
    assert filterset.search_alone
    return filterset


def _instances(customers) -> list[tuple]:
    return sorted(
        (c.pk, c.email, c.full_name, c.orders_count, c.total_spent, c.last_order_number)
        for c in customers
    )


@pytest.mark.parametrize("tab", ["clients", "leads"])
def test_the_compiled_one_pass_read_is_the_lists_own(customers, tab):
    # Every sort for searches of each shape; every search under two sorts.
    cases = [(text, sort) for text in SHAPES for sort in EVERY_SORT]
    cases += [(text, sort) for text in SEARCHES for sort in ("-last_order", "name")]
    for text, sort in cases:
        search = parse_query(text)
        listed = sorted_customers(_filterset(tab, text).qs, sort)
        compiled = CompiledSearch(tab=tab, sort=sort, search=search)
        expected_sql, expected_params = one_pass_matches(listed, COUNT_CAP).query.sql_with_params()
        assert compiled.matches(COUNT_CAP) == (expected_sql, list(expected_params)), (
            text,
            sort,
        )


@pytest.mark.parametrize("tab", ["clients", "leads"])
def test_the_compiled_rows_are_the_lists_own(customers, tab):
    ids = [c.pk for c in customers] + [10**9]
    for text in SEARCHES:
        search = parse_query(text)
        for sort in ("-last_order", "name", "-created_at"):
            listed = sorted_customers(_filterset(tab, text).qs, sort)
            for some in (ids[:1], ids[2:5], ids):
                with CaptureQueriesContext(connection) as expected_sql:
                    expected = list(one_pass_rows(listed, some))
                with CaptureQueriesContext(connection) as compiled_sql:
                    found = CompiledSearch(tab=tab, sort=sort, search=search).rows(some)
                assert _instances(found) == _instances(expected), (text, sort)
                assert [q["sql"] for q in compiled_sql] == [q["sql"] for q in expected_sql]
            with CaptureQueriesContext(connection) as no_query:
                assert CompiledSearch(tab=tab, sort=sort, search=search).rows([]) == []
            assert len(no_query) == 0


@pytest.mark.parametrize("tab", ["clients", "leads"])
def test_the_compiled_count_in_the_other_tab_is_the_lists_own(customers, tab):
    other = "leads" if tab == "clients" else "clients"
    for text in [*SEARCHES, "example", "e"]:
        filterset = _filterset(tab, text)
        for cap in (1, 1000):
            with CaptureQueriesContext(connection) as expected_sql:
                expected = customer_match_count(tab=other, filterset=filterset, cap=cap)
            with CaptureQueriesContext(connection) as compiled_sql:
                found = search_match_count(tab=other, search=parse_query(text), cap=cap)
            assert found == expected, (text, cap)
            assert [q["sql"] for q in compiled_sql] == [q["sql"] for q in expected_sql]


def test_a_search_alone_is_compiled_and_a_search_with_a_filter_is_not(viewer_client, customers):
    """The lists take the compiled path for words in the search box alone; with a filter, or
    a client ID, the list builds its queries as before."""
    with mock.patch("clients.listing.CompiledSearch", wraps=CompiledSearch) as compiled:
        viewer_client.get("/clients/", {"q": "garcia", "sort": "name"})
        viewer_client.get("/clients/leads/", {"q": "garcia"})
        assert compiled.call_count == 2
        viewer_client.get("/clients/", {"q": "garcia", "source": "google"})
        viewer_client.get("/clients/", {"q": f"#{customers[0].pk}"})
        viewer_client.get("/clients/", {"q": ""})
        viewer_client.get("/clients/", {"q": "x", "orders_min": "abc"})
        assert compiled.call_count == 2


def test_a_search_of_a_known_shape_compiles_no_query(viewer_client, customers):
    """Once a search of the same shape (tab, sort, number of words, rows) was shown, another
    one compiles none of its customer queries: they are the compiled ones."""
    viewer_client.get("/clients/", {"q": "garcia"})
    viewer_client.get("/clients/", {"q": "ardent"})
    compiled_tables = []
    original = SQLCompiler.as_sql

    def as_sql(self, *args, **kwargs):
        compiled_tables.append(self.query.model._meta.db_table if self.query.model else "")
        return original(self, *args, **kwargs)

    # (SQLite counts the tabs with the ORM: not this test's concern.)
    counts = {"clients": 4, "leads": 2}
    with (
        mock.patch.object(SQLCompiler, "as_sql", as_sql),
        mock.patch("clients.listing.tab_counts", return_value=counts),
    ):
        response = viewer_client.get("/clients/", {"q": "brook"})
    assert response.status_code == 200
    assert "clients_customer" not in compiled_tables


@pytest.mark.parametrize("text", ["garcia", "ardent", "100%", "06 12", "zzz"])
def test_the_page_of_a_compiled_search_is_the_same(viewer_client, customers, text):
    """The whole page (rows, counts, the other tab's link) and its statements, compiled or
    built by the ORM."""

    def page(tab_url, compiled: bool):
        built = mock.patch(
            "clients.listing.CustomerList.compiled_search",
            new_callable=mock.PropertyMock,
            return_value=None,
        )
        with (
            contextlib.nullcontext() if compiled else built,
            CaptureQueriesContext(connection) as queries,
        ):
            response = viewer_client.get(tab_url, {"q": text})
        # Blank what differs in every response: CSRF tokens and CSP nonces.
        html = VOLATILE.sub("", response.content.decode())
        return html, [q["sql"] for q in queries if "django_session" not in q["sql"]]

    for url in ("/clients/", "/clients/leads/"):
        page(url, compiled=False)  # the first page also reads what every later one reuses
        assert page(url, compiled=True) == page(url, compiled=False)


VOLATILE = re.compile(r'(?<=value=")[^"]{64}(?=")|(?<=nonce=")[^"]+|(?<="X-CSRFToken": ")[^"]+')
