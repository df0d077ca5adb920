"""Authentication backends."""

import functools

from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection, connections, router


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

        found = {"user": set(), "group": set()}
        with connections[router.db_for_read(Permission)].cursor() as cursor:
            cursor.execute(_permissions_sql(), [user_obj.pk, user_obj.pk])
            for app, name, origin in cursor.fetchall():
                found[origin].add(f"{app}.{name}")
        user_obj._user_perm_cache = found["user"]
        user_obj._group_perm_cache = found["group"]


@functools.cache
def _permissions_sql() -> str:
    """The user's own and group permissions as (app_label, codename, origin) rows.

    The same joins as ModelBackend's two queries, written once from the models' metadata:
    building them with the ORM cost more CPU on every request than running them.
    """
    user_model = get_user_model()
    own = user_model._meta.get_field("user_permissions").remote_field.through._meta
    groups = user_model._meta.get_field("groups")
    membership = groups.remote_field.through._meta
    group_perms = groups.related_model._meta.get_field("permissions").remote_field.through._meta
    permission = Permission._meta
    content_type = ContentType._meta

    def column(meta, model) -> str:
        return next(f.column for f in meta.fields if f.related_model is model)

    q = connection.ops.quote_name
    perm = q(permission.db_table)
    ct = q(content_type.db_table)
    select = (
        f"SELECT ct.{q('app_label')}, p.{q('codename')}, %s FROM {perm} p "
        f"JOIN {ct} ct ON ct.{q('id')} = p.{q(permission.get_field('content_type').column)} "
    )
    return (
        select.replace("%s", "'user'")
        + f"JOIN {q(own.db_table)} up ON up.{q(column(own, Permission))} = p.{q('id')} "
        f"WHERE up.{q(column(own, user_model))} = %s "
        "UNION ALL " + select.replace("%s", "'group'") + f"JOIN {q(group_perms.db_table)} gp "
        f"ON gp.{q(column(group_perms, Permission))} = p.{q('id')} "
        f"JOIN {q(membership.db_table)} ug "
        f"ON ug.{q(column(membership, groups.related_model))} = "
        f"gp.{q(column(group_perms, groups.related_model))} "
        f"WHERE ug.{q(column(membership, user_model))} = %s"
    )
