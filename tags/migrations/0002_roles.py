from django.db import migrations

from backoffice.migration_roles import grant_roles, revoke_roles

# Everyone reads the tag library and the bulk jobs; Staff and Admin tag customers and
# rename, merge and delete tags.
VIEW = ["tags.view_tag", "tags.view_customertag", "tags.view_tagjob"]
EDIT = VIEW + [
    "tags.add_customertag",
    "tags.delete_customertag",
    "tags.add_tag",
    "tags.change_tag",
    "tags.delete_tag",
    "tags.add_tagjob",
]
ROLES = {"Viewer": VIEW, "Staff": EDIT, "Admin": EDIT}


class Migration(migrations.Migration):
    dependencies = [
        ("tags", "0001_initial"),
        ("clients", "0003_roles"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(grant_roles(ROLES), revoke_roles(ROLES))]
