"""DATABASE_URL as a DATABASES entry (backoffice/env.py)."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from backoffice.env import parse_database_url


def parse(url: str) -> dict:
    return parse_database_url(url, default_sqlite="db.sqlite3")


def test_postgres_binds_on_the_server_and_prepares_repeated_statements():
    db = parse("postgres://shop:s%40cret@db.internal:6432/backoffice")
    assert db["ENGINE"] == "django.db.backends.postgresql"
    assert (db["NAME"], db["USER"], db["PASSWORD"]) == ("backoffice", "shop", "s@cret")
    assert (db["HOST"], db["PORT"]) == ("db.internal", "6432")
    assert db["OPTIONS"] == {"server_side_binding": True, "prepare_threshold": 5}
    assert db["CONN_MAX_AGE"] == 60 and db["CONN_HEALTH_CHECKS"] is True


def test_prepared_statements_can_be_turned_off_for_a_pooler():
    db = parse("postgres://localhost/backoffice?prepare_threshold=none&conn_max_age=0")
    assert db["OPTIONS"]["prepare_threshold"] is None
    assert db["CONN_MAX_AGE"] == 0
    db = parse("postgres://localhost/backoffice?server_side_binding=off&sslmode=require")
    assert db["OPTIONS"] == {
        "server_side_binding": False,
        "prepare_threshold": 5,
        "sslmode": "require",
    }


@pytest.mark.parametrize(
    "url",
    [
        "postgres://localhost/backoffice?server_side_binding=maybe",
        "postgres://localhost/backoffice?prepare_threshold=often",
        "mysql://localhost/backoffice",
    ],
)
def test_bad_values_are_refused_with_a_message(url):
    with pytest.raises(ImproperlyConfigured):
        parse(url)


def test_sqlite_is_the_default():
    assert parse("")["ENGINE"] == "django.db.backends.sqlite3"
    assert parse("sqlite:///other.db")["NAME"] == "other.db"
