"""System checks of the database the lists rely on (run by `migrate` and `check --database`)."""

from django.core.checks import Tags, Warning, register
from django.db import connections


@register(Tags.database)
def autovacuum_is_on(app_configs=None, databases=None, **kwargs):
    """PostgreSQL's autovacuum keeps the customers table's visibility map current (clients
    migration 0008 sets how often); with it off, deep pages of the lists slow down as orders
    change customers, until someone runs VACUUM."""
    warnings = []
    for alias in databases or ():
        connection = connections[alias]
        if connection.vendor != "postgresql":
            continue
        with connection.cursor() as cursor:
            cursor.execute("SHOW autovacuum")
            if cursor.fetchone()[0] != "off":
                continue
        warnings.append(
            Warning(
                f"PostgreSQL's autovacuum is off (database {alias!r}).",
                hint=(
                    "Turn it on in postgresql.conf (autovacuum = on, PostgreSQL's default), "
                    "or run VACUUM on the customers table regularly: every order change "
                    "rewrites a customer, and the lists' deep pages get slower until the "
                    "table is vacuumed again."
                ),
                id="clients.W001",
            )
        )
    return warnings
