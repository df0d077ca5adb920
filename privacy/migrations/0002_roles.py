from django.db import migrations

from backoffice.migration_roles import grant_roles, revoke_roles

# Admins erase customers, download their data, preview the retention sweep and read the access
# log; Staff (and Admins) record consents given on the phone, by email or in person.
ROLES = {
    "Staff": ["privacy.add_consentrecord"],
    "Admin": ["privacy.add_consentrecord", "privacy.manage_privacy"],
}


class Migration(migrations.Migration):
    dependencies = [
        ("privacy", "0001_initial"),
        ("clients", "0003_roles"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(grant_roles(ROLES), revoke_roles(ROLES))]
