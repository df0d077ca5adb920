"""Authentication backends."""

from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Permission
from django.db.models import CharField, Value


class PermissionsInOneQueryBackend(ModelBackend):
    """ModelBackend reading a user's own and group permissions in one query instead of two.

    Every page checks permissions, so ModelBackend's two queries (user permissions, then group
    permissions) are paid on every request. Here both come from one UNION ALL, each row tagged
    with its origin, and fill the same caches on the user object as ModelBackend
    (`_user_perm_cache`, `_group_perm_cache`, `_perm_cache`), so get_user_permissions(),
    get_group_permissions(), get_all_permissions() and has_perm() answer exactly as before.
    Inactive and anonymous users have no permission; superusers have every permission.
    """

    def _get_permissions(self, user_obj, obj, from_name):
        if not user_obj.is_active or user_obj.is_anonymous or obj is not None:
            return set()
        perm_cache_name = f"_{from_name}_perm_cache"
        if not hasattr(user_obj, perm_cache_name):
            self._load_permissions(user_obj)
        return getattr(user_obj, perm_cache_name)

    async def _aget_permissions(self, user_obj, obj, from_name):
        return await sync_to_async(self._get_permissions)(user_obj, obj, from_name)

    def _load_permissions(self, user_obj) -> None:
        """Fill both of ModelBackend's per-origin caches from one query."""
        columns = ("content_type__app_label", "codename")
        if user_obj.is_superuser:
            everything = {
                f"{app}.{name}" for app, name in Permission.objects.values_list(*columns).order_by()
            }
            user_obj._user_perm_cache = everything
            user_obj._group_perm_cache = set(everything)
            return

        def tagged(permissions, origin: str):
            return (
                permissions.annotate(origin=Value(origin, output_field=CharField()))
                .values_list(*columns, "origin")
                .order_by()
            )

        # The same lookups as ModelBackend._get_user_permissions/_get_group_permissions.
        user_model = get_user_model()
        groups_field = user_model._meta.get_field("groups")
        perms_field = user_model._meta.get_field("user_permissions")
        own = Permission.objects.filter(**{perms_field.related_query_name(): user_obj})
        via_groups = Permission.objects.filter(
            **{f"group__{groups_field.related_query_name()}": user_obj}
        )
        found = {"user": set(), "group": set()}
        rows = tagged(own, "user").union(tagged(via_groups, "group"), all=True).order_by()
        for app, name, origin in rows:
            found[origin].add(f"{app}.{name}")
        user_obj._user_perm_cache = found["user"]
        user_obj._group_perm_cache = found["group"]
