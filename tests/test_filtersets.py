"""backoffice/filtersets.py: the lists' FilterSet builds its form class once per process and
copies its filters shallowly; it must read, validate and filter exactly as stock django-filter
does, and no form or filterset may see another's data."""

import re

import django_filters
import pytest
from django.core.exceptions import EmptyResultSet
from django.http import QueryDict

from clients.filters import CustomerFilter
from clients.models import Customer
from clients.selectors import customer_list
from tags.models import Tag
from tags.services import tags_get_or_create
from tests.factories import CustomerFactory, make_order

pytestmark = pytest.mark.django_db


class StockCustomerFilter(CustomerFilter):
    """The same filters with django-filter's own instance and form building."""

    __init__ = django_filters.FilterSet.__init__
    get_form_class = django_filters.FilterSet.get_form_class


QUERIES = [
    "",
    "q=garcia+agathe",
    "q=%23295",
    "q=06+12+34",
    "source=google&medium=cpc&sort=name",
    "spent_min=100&spent_max=50",  # reversed range: an error on spent_max
    "orders_min=x&country=ZZ",  # two invalid values
    "last_order_after=2026-01-01&last_order_before=2025-01-01",
    "created_after=2026-01-01",
    "push=true&email_consent=false&sms_consent=true",
    "group=loyal",
    "group=nobody",
    "product=SKU-1",
    "recent_orders_min=2&recent_orders_days=90",
    "recent_orders_min=2",  # days missing
    "launch_source=google&opened_push=never",
    "opened_push=sometimes",
    "country=fr",
]


def _tag_queries(tags: list[Tag]) -> list[str]:
    a, b = tags
    return [
        f"tags_any={a.pk}&tags_any={b.pk}",
        f"tags_all={a.pk}&tags_none={b.pk}",
        "tags_any=999999",  # no such tag
        "tags_any=abc",
    ]


# "Orders in the last N days" compares with the time of the query.
MOMENT = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?(\+00:00)?")


def _sql(queryset) -> str:
    try:
        return MOMENT.sub("<now>", str(queryset.query))
    except EmptyResultSet:  # a filter that can match nothing (no such product)
        return "nothing"


def _state(filterset) -> tuple:
    valid = filterset.is_valid()
    form = filterset.form
    return (
        valid,
        {name: list(errors) for name, errors in form.errors.items()},
        {name: repr(value) for name, value in form.cleaned_data.items()} if valid else None,
        _sql(filterset.qs),
        filterset.count_cap,
        filterset.active if valid else None,
    )


@pytest.fixture
def tags():
    return tags_get_or_create(names=["vip", "new"])


@pytest.mark.parametrize("query", QUERIES)
def test_the_shared_form_reads_as_stock_django_filter(query):
    data = QueryDict(query) if query else None
    ours = CustomerFilter(data, queryset=customer_list(tab="clients"))
    stock = StockCustomerFilter(data, queryset=customer_list(tab="clients"))
    assert _state(ours) == _state(stock)


def test_tag_filters_read_as_stock_django_filter(tags):
    for query in _tag_queries(tags):
        data = QueryDict(query)
        ours = CustomerFilter(data, queryset=customer_list(tab="leads"))
        stock = StockCustomerFilter(data, queryset=customer_list(tab="leads"))
        assert _state(ours) == _state(stock), query


def test_forms_share_fields_but_nothing_bound(tags):
    first = CustomerFilter(QueryDict("q=alice&spent_min=9&spent_max=1"), queryset=None)
    second = CustomerFilter(QueryDict(f"source=google&tags_any={tags[0].pk}"), queryset=None)
    assert not first.is_valid() and second.is_valid()
    # One form class and its field objects for both; each form its own mapping, data and
    # errors.
    assert type(first.form) is type(second.form)
    assert first.form.fields["q"] is second.form.fields["q"]
    assert first.form.fields is not second.form.fields
    assert first.form["q"].value() == "alice" and second.form["q"].value() is None
    assert "spent_max" in first.form.errors and not second.form.errors
    assert second.form.cleaned_data["tags_any"] == [tags[0]]
    # A field removed from one form stays in the others.
    del first.form.fields["country"]
    assert "country" in second.form.fields
    assert "country" in CustomerFilter(None).form.fields


def test_each_filterset_filters_with_its_own_data():
    """Filter methods (the search, the country) are looked up on their own filterset, not on
    another one or the class's first."""
    alice = CustomerFactory(first_name="Alice", last_name="Martin", country="FR")
    bruno = CustomerFactory(first_name="Bruno", last_name="Petit", country="DE")
    for customer in (alice, bruno):
        make_order(customer)
    queryset = Customer.objects.all()
    by_alice = CustomerFilter(QueryDict("q=alice"), queryset=queryset)
    by_bruno = CustomerFilter(QueryDict("q=bruno"), queryset=queryset)
    by_country = CustomerFilter(QueryDict("country=de"), queryset=queryset)
    assert list(by_bruno.qs) == [bruno]
    assert list(by_alice.qs) == [alice]
    assert list(by_country.qs) == [bruno]
    assert all(f.parent is by_alice for f in by_alice.filters.values())
    assert by_alice.filters["q"] is not by_bruno.filters["q"]
