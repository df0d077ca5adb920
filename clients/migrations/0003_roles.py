from django.contrib.auth.management import create_permissions
from django.db import migrations

ROLES = {
    "Viewer": [
        "clients.view_customer",
        "clients.view_address",
        "clients.view_note",
        "clients.view_auditentry",
        "orders.view_order",
        "orders.view_orderline",
    ],
}
ROLES["Staff"] = ROLES["Viewer"] + [
    "clients.change_customer",
    "clients.change_address",
    "clients.add_note",
]
ROLES["Admin"] = list(ROLES["Staff"])


def create_roles(apps, schema_editor):
    # Permissions are normally created after all migrations; roles need them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, verbosity=0, apps=apps)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, perms in ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        for perm in perms:
            app_label, codename = perm.split(".")
            group.permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )


def delete_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=ROLES).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("clients", "0002_initial"),
        ("orders", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_roles, delete_roles)]
