"""Orders leave a tenth of each table page free (PostgreSQL only).

An order's status and refunded amount change after it is inserted (paid, fulfilled,
refunded), and no index covers those columns: with room left on the order's page PostgreSQL
writes the new row version next to the old one without touching the order's three indexes
(a heap-only tuple update). A full page (the default fillfactor of 100, which a table only
appended to keeps) made every status change a new entry in every index. Applies to pages
written from now on.
"""

from django.db import migrations


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE orders_order SET (fillfactor = 90)")


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE orders_order RESET (fillfactor)")


class Migration(migrations.Migration):
    dependencies = [("orders", "0002_order_customer_single_index")]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
