"""backoffice/compiled.py: a queryset compiled once gives, with other values, the rows the
queryset itself gives with them (converted alike: dates are datetimes on SQLite too)."""

from datetime import datetime, timedelta

import pytest
from django.contrib.auth.models import User
from django.db.models import Value
from django.utils import timezone

from backoffice.compiled import CompiledQuery, CompiledStatement
from segments.selectors import panel_rows
from segments.services import segment_create
from tags.models import Tag
from tags.services import tags_get_or_create

pytestmark = pytest.mark.django_db

MARK = "\x00mark"


def _union(tab: str):
    segments = User.objects.filter(username=tab).values_list(
        Value("u"), "pk", "username", "date_joined"
    )
    tags = Tag.objects.values_list(Value("t"), "pk", "name", "updated_at")
    return segments.union(tags, all=True)


def test_rows_are_the_querysets_rows_with_other_values():
    tags_get_or_create(names=["vip", "Été"])
    User.objects.create_user("ada")
    User.objects.create_user("bob")
    compiled = CompiledQuery(_union(MARK), MARK)
    for name in ("ada", "bob", "nobody"):
        expected = sorted(_union(name))
        assert sorted(compiled.rows(name)) == expected
        assert all(isinstance(row[3], datetime) and row[3].tzinfo for row in expected)
    assert len(compiled.rows("ada")) == 3


def test_a_marker_must_be_one_parameter():
    with pytest.raises(ValueError):
        CompiledQuery(_union("ada"), MARK)


def test_the_panel_reads_segments_and_tags_of_the_tab():
    admin = User.objects.create_superuser("admin")
    tags = tags_get_or_create(names=["b2b", "Anniversaire"])
    segment = segment_create(actor=admin, name="Google", tab="clients", query="source=google")
    segment_create(actor=admin, name="Leads FR", tab="leads", query="country=FR")
    found, tag_rows = panel_rows(tab="clients")
    assert [(s.pk, s.name, s.query, s.updated_at) for s in found] == [
        (segment.pk, "Google", "source=google", segment.updated_at)
    ]
    assert tag_rows == sorted(((t.pk, t.name) for t in tags), key=lambda r: r[1].casefold())


def test_objects_are_the_querysets_instances_with_other_values():
    """objects(): model instances with their select_related() objects and annotations, as the
    queryset gives them, for each value."""
    from django.db.models import Count

    from clients.models import Customer
    from orders.models import Order
    from tests.factories import CustomerFactory, make_order

    ada, bob = CustomerFactory(first_name="Ada"), CustomerFactory(first_name="Bob")
    for customer in (ada, bob, ada):
        make_order(customer)

    def orders(customer_id):
        return (
            Order.objects.filter(customer_id=customer_id)
            .select_related("customer")
            .annotate(lines_count=Count("lines"))
            .order_by("-pk")
        )

    compiled = CompiledQuery(orders(-1), -1)
    for customer in (ada, bob, Customer(pk=10**9)):
        expected = list(orders(customer.pk))
        found = compiled.objects(customer.pk)
        assert [
            (o.pk, o.number, o.placed_at, o.total, o.lines_count, o.customer.first_name)
            for o in found
        ] == [
            (o.pk, o.number, o.placed_at, o.total, o.lines_count, o.customer.first_name)
            for o in expected
        ]
        assert all(isinstance(o.placed_at, datetime) and o.placed_at.tzinfo for o in found)


def test_objects_do_not_prefetch():
    from orders.models import Order

    with pytest.raises(ValueError):
        CompiledQuery(Order.objects.prefetch_related("lines").filter(pk=-1), -1).objects(1)


def test_the_client_pages_addresses_and_launches_are_the_querysets():
    """customer_addresses() and customer_origin()'s recent launches, read with SQL compiled
    once, are what their querysets give."""
    from clients.models import Address
    from clients.selectors import customer_addresses
    from storefront.models import Launch
    from storefront.selectors import customer_origin
    from tests.factories import AddressFactory, CustomerFactory

    ada, bob, cat = CustomerFactory(), CustomerFactory(), CustomerFactory()
    for customer in (ada, bob, ada):
        AddressFactory(customer=customer)
    now = timezone.now()
    # Cat's two latest launches have no source: her last one with a source is read apart.
    for minutes, source in ((9, "old"), (5, "mail"), (1, ""), (0, "")):
        at = now - timedelta(minutes=minutes)
        Launch.objects.create(
            customer=cat, source=source, occurred_at=at, received_at=at, platform="web"
        )
    for minutes, (customer, source) in enumerate(
        ((ada, "google"), (bob, ""), (ada, ""), (ada, "x"))
    ):
        at = now - timedelta(minutes=minutes % 2)
        Launch.objects.create(
            customer=customer, source=source, occurred_at=at, received_at=at, platform="web"
        )
    for customer in (ada, bob, cat):
        expected = list(Address.objects.filter(customer_id=customer.pk).order_by("pk"))
        found = customer_addresses(customer_id=customer.pk)
        assert [(a.pk, a.line1, a.customer_id) for a in found] == [
            (a.pk, a.line1, a.customer_id) for a in expected
        ]
        launches = Launch.objects.filter(customer_id=customer.pk).order_by("-occurred_at", "-id")
        origin = customer_origin(customer_id=customer.pk, recent=2)
        assert [(x.pk, x.source, x.occurred_at) for x in origin["recent"]] == [
            (x.pk, x.source, x.occurred_at) for x in launches[:2]
        ]
        with_source = launches.exclude(source="")
        first, last = with_source.last(), with_source.first()
        assert (origin["first"], origin["last"]) == (first, last)
        assert first is None or (origin["first"].source, origin["first"].occurred_at) == (
            first.source,
            first.occurred_at,
        )


@pytest.mark.parametrize("name", ["ada", "a%", "a_a", "a\\a", "Été", "", "%"])
def test_a_marker_within_a_pattern_takes_the_value_escaped_as_the_lookup_escapes_it(name):
    """A marker inside a text parameter (a contains lookup's "%marker%") is replaced by the
    value escaped as Django escapes it: the same SQL, parameters and rows as the queryset."""
    for username in ("ada", "a%a", "a_a", "axa", "a\\a", "Été"):
        User.objects.create_user(username)

    def named(text):
        return User.objects.filter(username__contains=text).order_by("pk").values_list("username")

    compiled = CompiledQuery(named(MARK), MARK)
    sql, params = named(name).query.sql_with_params()
    assert (compiled.sql, compiled.params_with(name)) == (sql, list(params))
    assert compiled.rows(name) == list(named(name))


def test_a_marker_twice_in_a_pattern_or_in_two_parameters_is_refused():
    with pytest.raises(ValueError):
        CompiledQuery(User.objects.filter(username__contains=MARK + MARK), MARK)
    with pytest.raises(ValueError):
        CompiledQuery(User.objects.filter(username__contains=MARK, email__contains=MARK), MARK)


def test_a_captured_statement_is_the_orms_and_is_not_sent():
    """CompiledStatement.capture(): the statement a count() sends, compiled with markers,
    run with other values gives the count; capturing it sends nothing (no query counted)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for username in ("ada", "adam", "bob"):
        User.objects.create_user(username)

    def count(text):
        return User.objects.filter(username__contains=text, is_active=True)[:5].count()

    with CaptureQueriesContext(connection) as capturing:
        compiled = CompiledStatement.capture("default", lambda: count(MARK), MARK)
    assert len(capturing) == 0
    for text in ("ada", "a", "b", "zz", "%"):
        with CaptureQueriesContext(connection) as expected:
            value = count(text)
        with CaptureQueriesContext(connection) as found:
            assert compiled.value(text) == value
        assert [q["sql"] for q in found] == [q["sql"] for q in expected]
    with pytest.raises(ValueError):
        CompiledStatement.capture("default", lambda: None)
