from django.db import migrations

# The access log is append-only in the database too. Rows are never updated;
# deleting is left to the pruning (privacy.services.access_log_prune).
FORWARD = """
CREATE FUNCTION privacy_access_log_no_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the access log is append-only';
END $$;
CREATE TRIGGER privacy_access_log_no_update BEFORE UPDATE ON privacy_accesslogentry
    FOR EACH ROW EXECUTE FUNCTION privacy_access_log_no_update();
"""
BACKWARD = """
DROP TRIGGER IF EXISTS privacy_access_log_no_update ON privacy_accesslogentry;
DROP FUNCTION IF EXISTS privacy_access_log_no_update();
"""


SQLITE_FORWARD = """
CREATE TRIGGER privacy_access_log_no_update BEFORE UPDATE ON privacy_accesslogentry
BEGIN SELECT RAISE(ABORT, 'the access log is append-only'); END;
"""
SQLITE_BACKWARD = "DROP TRIGGER IF EXISTS privacy_access_log_no_update;"


def forward(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(FORWARD)
    elif vendor == "sqlite":
        schema_editor.execute(SQLITE_FORWARD)


def backward(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(BACKWARD)
    elif vendor == "sqlite":
        schema_editor.execute(SQLITE_BACKWARD)


class Migration(migrations.Migration):
    dependencies = [("privacy", "0002_roles")]

    operations = [migrations.RunPython(forward, backward)]
