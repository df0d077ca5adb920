from django.db import migrations

from backoffice.migration_roles import grant_roles, revoke_roles

# Only Admins import files (an import creates and changes customers in bulk).
ROLES = {"Admin": ["imports.import_data"]}


class Migration(migrations.Migration):
    dependencies = [
        ("imports", "0001_initial"),
        ("clients", "0003_roles"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(grant_roles(ROLES), revoke_roles(ROLES))]
