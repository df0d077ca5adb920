"""The order number's uniqueness as a named constraint instead of `unique=True`, whose
varchar_pattern_ops index (PostgreSQL) served no query and cost every order's INSERT.

On PostgreSQL the existing unique constraint is renamed and the pattern index dropped: no
index is rebuilt, so the orders table is not locked for the length of a build. SQLite has no
pattern index, and its column's own UNIQUE is that constraint: nothing changes there (a later
rebuild of the table writes it as the constraint)."""

from django.db import migrations, models

NAME = "order_number_unique"
MESSAGE = "An order with this number already exists."


def _constraint() -> models.UniqueConstraint:
    return models.UniqueConstraint(fields=["number"], name=NAME, violation_error_message=MESSAGE)


def forward(apps, schema_editor):
    order = apps.get_model("orders", "Order")
    table = order._meta.db_table
    if schema_editor.connection.vendor != "postgresql":
        return
    like = schema_editor._create_index_name(table, ["number"], suffix="_like")
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT conname FROM pg_constraint c JOIN pg_attribute a"
            " ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)"
            " WHERE c.conrelid = %s::regclass AND c.contype = 'u' AND a.attname = 'number'"
            " AND array_length(c.conkey, 1) = 1",
            [table],
        )
        (unique,) = cursor.fetchone()
    quote = schema_editor.quote_name
    schema_editor.execute(f"DROP INDEX IF EXISTS {quote(like)}")
    schema_editor.execute(
        f"ALTER TABLE {quote(table)} RENAME CONSTRAINT {quote(unique)} TO {quote(NAME)}"
    )


def backward(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    order = apps.get_model("orders", "Order")
    table = order._meta.db_table
    like = schema_editor._create_index_name(table, ["number"], suffix="_like")
    quote = schema_editor.quote_name
    schema_editor.execute(
        f"ALTER TABLE {quote(table)} RENAME CONSTRAINT {quote(NAME)} TO {quote(table + '_number_key')}"
    )
    schema_editor.execute(
        f"CREATE INDEX {quote(like)} ON {quote(table)} (number varchar_pattern_ops)"
    )


class Migration(migrations.Migration):
    dependencies = [("orders", "0005_attribution_order_push_campaign")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="order", name="number", field=models.CharField(max_length=32)
                ),
                migrations.AddConstraint(model_name="order", constraint=_constraint()),
            ],
            database_operations=[migrations.RunPython(forward, backward)],
        )
    ]
