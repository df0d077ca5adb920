from django.db import migrations

from backoffice.migration_roles import grant_roles, revoke_roles

# Everyone opens and uses saved segments; Staff and Admin save, rename and delete them.
VIEW = ["segments.view_segment"]
EDIT = VIEW + ["segments.add_segment", "segments.change_segment", "segments.delete_segment"]
ROLES = {"Viewer": VIEW, "Staff": EDIT, "Admin": EDIT}


class Migration(migrations.Migration):
    dependencies = [
        ("segments", "0001_initial"),
        ("clients", "0003_roles"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(grant_roles(ROLES), revoke_roles(ROLES))]
