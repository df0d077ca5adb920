"""Giving the back-office roles (clients/roles.py) an app's permissions from its migration.

Each app's `0002_roles` migration names what each role gets (`ROLES = {"Admin": ["app.perm"]}`)
and runs `RunPython(grant_roles(ROLES), revoke_roles(ROLES))`. Only the historical models of
the migration's `apps` are used, so the helper stays valid for old migrations; change what it
does only in a way every one of them still wants.
"""

from django.contrib.auth.management import create_permissions


def grant_roles(roles: dict[str, list[str]]):
    """A RunPython function giving each role (a Group, created if missing) its permissions."""

    def grant(apps, schema_editor):
        # Permissions are normally created after all migrations; the roles need them now.
        for app_config in apps.get_app_configs():
            app_config.models_module = True
            create_permissions(app_config, verbosity=0, apps=apps)
            app_config.models_module = None
        Group = apps.get_model("auth", "Group")
        Permission = apps.get_model("auth", "Permission")
        for name, perms in roles.items():
            group, _ = Group.objects.get_or_create(name=name)
            for perm in perms:
                app_label, codename = perm.split(".")
                group.permissions.add(
                    Permission.objects.get(content_type__app_label=app_label, codename=codename)
                )

    return grant


def revoke_roles(roles: dict[str, list[str]]):
    """The RunPython function undoing grant_roles(roles)."""

    def revoke(apps, schema_editor):
        Group = apps.get_model("auth", "Group")
        Permission = apps.get_model("auth", "Permission")
        for name, perms in roles.items():
            group = Group.objects.filter(name=name).first()
            if group is None:
                continue
            for perm in perms:
                app_label, codename = perm.split(".")
                group.permissions.remove(
                    *Permission.objects.filter(content_type__app_label=app_label, codename=codename)
                )

    return revoke
