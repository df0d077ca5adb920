"""PostgreSQL: the customers table's autovacuum settings (clients migration 0008)."""

import importlib

import pytest
from django.core.checks import Tags, run_checks
from django.db import connection

from clients.checks import autovacuum_is_on
from clients.models import Customer

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="autovacuum settings are PostgreSQL's"
    ),
]

MIGRATION = importlib.import_module("clients.migrations.0008_customer_autovacuum")


def test_the_customers_table_is_vacuumed_after_a_fixed_number_of_changed_rows():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reloptions FROM pg_class WHERE oid = %s::regclass",
            [connection.ops.quote_name(Customer._meta.db_table)],
        )
        options = dict(option.split("=", 1) for option in cursor.fetchone()[0])
    assert options == MIGRATION.SETTINGS
    # Whatever the table's size: no share of the table to wait for.
    assert options["autovacuum_vacuum_scale_factor"] == "0"
    assert options["autovacuum_vacuum_insert_scale_factor"] == "0"


def test_a_system_check_warns_when_the_servers_autovacuum_is_off():
    with connection.cursor() as cursor:
        cursor.execute("SHOW autovacuum")
        off = cursor.fetchone()[0] == "off"
    warnings = autovacuum_is_on(databases=["default"])
    assert [w.id for w in warnings] == (["clients.W001"] if off else [])
    # Registered with the database checks (migrate and `check --database` run them).
    found = run_checks(tags=[Tags.database], databases=["default"])
    assert ("clients.W001" in [w.id for w in found]) == off
