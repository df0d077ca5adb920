from django.db import migrations

from backoffice.migration_roles import grant_roles, revoke_roles

# Everyone in the back office may read campaign results; only Admin may act on campaigns.
VIEW = [
    "notifications.view_campaign",
    "notifications.view_delivery",
    "notifications.view_pushsubscription",
]
ROLES = {
    "Viewer": VIEW,
    "Staff": VIEW,
    "Admin": VIEW
    + [
        "notifications.add_campaign",
        "notifications.change_campaign",
        "notifications.send_campaign",
    ],
}


class Migration(migrations.Migration):
    dependencies = [
        ("notifications", "0001_initial"),
        ("clients", "0003_roles"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(grant_roles(ROLES), revoke_roles(ROLES))]
