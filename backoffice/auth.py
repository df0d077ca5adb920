"""Authentication backends."""

import functools

from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import Permission
from django.core.exceptions import ValidationError
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

    def get_user(self, user_id):
        """The logged-in user of a request, as ModelBackend reads it, with SQL written once
        (the ORM's get() cost twice as much CPU, on every request)."""
        user_model = get_user_model()
        try:
            pk = user_model._meta.pk.to_python(user_id)
        except ValidationError:
            return None  # a session holding something else than a primary key
        alias = router.db_for_read(user_model)
        with connections[alias].cursor() as cursor:
            cursor.execute(_user_sql(), [pk])
            row = cursor.fetchone()
        if row is None:
            return None
        # As raw() builds it (each column through its converters, then Model.from_db()),
        # without a RawQuerySet's per-call setup: every request reads its user.
        names, converters = _user_columns(alias)
        values = list(row)
        for i, column, functions in converters:
            for function in functions:
                values[i] = function(values[i], column, connections[alias])
        user = user_model.from_db(alias, names, values)
        return user if self.user_can_authenticate(user) else None

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
        alias = router.db_for_read(Permission)
        with connections[alias].cursor() as cursor:
            cursor.execute(_permission_ids_sql(), [user_obj.pk, user_obj.pk])
            rows = cursor.fetchall()
        names = _permission_names(alias)
        if any(pk not in names for pk, _origin in rows):
            # A permission created since the names were read: read them again.
            _PERMISSION_NAMES.pop(alias, None)
            names = _permission_names(alias)
        for pk, origin in rows:
            if pk in names:
                found[origin].add(names[pk])
        user_obj._user_perm_cache = found["user"]
        user_obj._group_perm_cache = found["group"]


@functools.cache
def _user_sql() -> str:
    meta = get_user_model()._meta
    q = connection.ops.quote_name
    columns = ", ".join(q(field.column) for field in meta.concrete_fields)
    return f"SELECT {columns} FROM {q(meta.db_table)} WHERE {q(meta.pk.column)} = %s"


@functools.cache
def _user_columns(alias: str) -> tuple[list[str], list]:
    """The user model's attribute names in _user_sql()'s column order, and the converters of
    the columns that have some (SQLite's dates and booleans; PostgreSQL's need none)."""
    meta = get_user_model()._meta
    connection = connections[alias]
    converters = []
    for i, field in enumerate(meta.concrete_fields):
        column = field.get_col(meta.db_table)
        functions = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
        if functions:
            converters.append((i, column, functions))
    return [field.attname for field in meta.concrete_fields], converters


# Per database: permission id -> "app_label.codename". Permissions are created by migrations
# and never renamed by the back office; like Django's content type cache, the names are read
# once per process (and again when an unknown id shows up).
_PERMISSION_NAMES: dict[str, dict[int, str]] = {}


def _permission_names(alias: str) -> dict[int, str]:
    names = _PERMISSION_NAMES.get(alias)
    if names is None:
        rows = Permission.objects.using(alias).values_list(
            "pk", "content_type__app_label", "codename"
        )
        names = _PERMISSION_NAMES[alias] = {pk: f"{app}.{name}" for pk, app, name in rows}
    return names


@functools.cache
def _permission_ids_sql() -> str:
    """The ids of the user's own and group permissions, each tagged with its origin.

    The same joins as ModelBackend's two queries, minus the permission and content type
    tables (their names come from _permission_names()): planning the full five-table union
    cost PostgreSQL more than the rest of a list page's queries together.
    """
    user_model = get_user_model()
    own = user_model._meta.get_field("user_permissions").remote_field.through._meta
    groups = user_model._meta.get_field("groups")
    membership = groups.remote_field.through._meta
    group_perms = groups.related_model._meta.get_field("permissions").remote_field.through._meta

    def column(meta, model) -> str:
        return next(f.column for f in meta.fields if f.related_model is model)

    q = connection.ops.quote_name
    return (
        f"SELECT up.{q(column(own, Permission))}, 'user' FROM {q(own.db_table)} up "
        f"WHERE up.{q(column(own, user_model))} = %s "
        f"UNION ALL SELECT gp.{q(column(group_perms, Permission))}, 'group' "
        f"FROM {q(group_perms.db_table)} gp JOIN {q(membership.db_table)} ug "
        f"ON ug.{q(column(membership, groups.related_model))} = "
        f"gp.{q(column(group_perms, groups.related_model))} "
        f"WHERE ug.{q(column(membership, user_model))} = %s"
    )
