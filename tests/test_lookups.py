"""backoffice.lookups: constants written into the SQL, and only constants of a closed shape."""

import pytest
from django.db import connection

from clients.models import IS_CLIENT, IS_LEAD, Customer
from tests.factories import CustomerFactory


def test_the_tabs_conditions_are_written_into_the_sql():
    for condition, written in ((IS_CLIENT, "> 0"), (IS_LEAD, "= 0")):
        sql, params = Customer.objects.filter(condition).only("pk").query.sql_with_params()
        assert f'"orders_count" {written}' in sql
        assert params == ()


def test_a_group_is_written_quoted():
    sql, params = (
        Customer.objects.filter(lifecycle_group__inline_exact="lost").only("pk").query
    ).sql_with_params()
    assert "\"lifecycle_group\" = 'lost'" in sql
    assert params == ()


def test_the_empty_string_is_written_quoted():
    """For a partial index's predicate (external_id <> '', clients.selectors)."""
    sql, params = (
        Customer.objects.exclude(external_id__inline_exact="").only("pk").query
    ).sql_with_params()
    assert """NOT ("clients_customer"."external_id" = '')""" in sql
    assert params == ()


@pytest.mark.parametrize(
    "value", ["lost'; DROP TABLE x; --", "Lost", "'", "a" * 41, "é", True, 1.5, None, ["lost"]]
)
def test_anything_but_an_int_or_a_lowercase_word_is_refused(value):
    with pytest.raises((ValueError, TypeError)):
        queryset = Customer.objects.filter(lifecycle_group__inline_exact=value)
        queryset.query.get_compiler(connection=connection).as_sql()


@pytest.mark.django_db
def test_the_written_conditions_select_the_same_rows():
    lead = CustomerFactory(orders_count=0)
    client = CustomerFactory(orders_count=3, lifecycle_group="lost")
    assert list(Customer.objects.filter(IS_CLIENT)) == [client]
    assert list(Customer.objects.filter(IS_LEAD)) == [lead]
    assert list(Customer.objects.filter(lifecycle_group__inline_exact="lost")) == [client]
