from django.db import migrations

from backoffice.migration_roles import grant_roles, revoke_roles

# Only Admins manage the storefront's API keys.
ROLES = {"Admin": ["storefront.manage_apikey"]}


class Migration(migrations.Migration):
    dependencies = [
        ("storefront", "0001_initial"),
        ("clients", "0003_roles"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(grant_roles(ROLES), revoke_roles(ROLES))]
