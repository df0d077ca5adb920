"""backoffice.auth.PermissionsInOneQueryBackend answers as ModelBackend, in one query."""

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import AnonymousUser, Group, Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext

from backoffice.auth import _PERMISSION_NAMES, PermissionsInOneQueryBackend
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

User = get_user_model()


def fresh(user):
    """The user as a new request loads it: no permission cache."""
    return User.objects.get(pk=user.pk)


def model_backend_answers(user) -> tuple[set, set, set]:
    user = fresh(user)
    backend = ModelBackend()
    return (
        backend.get_user_permissions(user),
        backend.get_group_permissions(user),
        backend.get_all_permissions(user),
    )


@pytest.fixture
def mixed_user():
    """A Staff user with one permission of their own besides the group's."""
    user = UserFactory(role="Staff")
    user.user_permissions.add(Permission.objects.get(codename="send_campaign"))
    # A permission both direct and through another group.
    shared = Permission.objects.get(codename="view_customer")
    user.user_permissions.add(shared)
    extra = Group.objects.create(name="Extra")
    extra.permissions.add(shared, Permission.objects.get(codename="delete_address"))
    user.groups.add(extra)
    return user


CUSTOM_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "backoffice.auth.PermissionsInOneQueryBackend",
]


@pytest.fixture
def custom_backend(settings):
    """Requests use this backend even when the suite runs with STOCK_DJANGO=1."""
    settings.AUTHENTICATION_BACKENDS = CUSTOM_BACKENDS


def test_the_setting_uses_the_backend_after_axes():
    if settings.STOCK_DJANGO:  # the suite run on Django's own backend (README, CI)
        assert settings.AUTHENTICATION_BACKENDS == [
            "axes.backends.AxesStandaloneBackend",
            "django.contrib.auth.backends.ModelBackend",
        ]
    else:
        assert settings.AUTHENTICATION_BACKENDS == CUSTOM_BACKENDS


def test_user_and_group_permissions_match_model_backend_in_one_query(mixed_user):
    own, via_groups, everything = model_backend_answers(mixed_user)
    assert "notifications.send_campaign" in own and "notifications.send_campaign" not in via_groups
    assert "clients.change_customer" in via_groups and "clients.change_customer" not in own
    assert "clients.view_customer" in own and "clients.view_customer" in via_groups
    assert "clients.delete_address" in via_groups

    PermissionsInOneQueryBackend().get_all_permissions(fresh(mixed_user))  # names read once
    user = fresh(mixed_user)
    backend = PermissionsInOneQueryBackend()
    with CaptureQueriesContext(connection) as queries:
        assert backend.get_all_permissions(user) == everything
        assert backend.get_user_permissions(user) == own
        assert backend.get_group_permissions(user) == via_groups
        assert backend.has_perm(user, "clients.delete_address")
        assert not backend.has_perm(user, "clients.delete_customer")
    assert len(queries) == 1
    # The same caches as ModelBackend's, so code that reads or clears them keeps working.
    assert user._user_perm_cache == own
    assert user._group_perm_cache == via_groups
    assert user._perm_cache == everything


def test_user_has_perm_costs_one_query_per_request(mixed_user, custom_backend):
    fresh(mixed_user).has_perm("clients.view_customer")  # the permission names, once
    user = fresh(mixed_user)
    with CaptureQueriesContext(connection) as queries:
        assert user.has_perm("clients.change_customer")
        assert user.has_perm("notifications.send_campaign")
        assert not user.has_perm("clients.delete_customer")
        assert user.has_perms(["clients.view_customer", "clients.add_note"])
    assert len(queries) == 1


def test_user_with_only_direct_or_no_permissions():
    direct = UserFactory()
    direct.user_permissions.add(Permission.objects.get(codename="view_order"))
    nobody = UserFactory()
    backend = PermissionsInOneQueryBackend()
    for user in (direct, nobody):
        own, via_groups, everything = model_backend_answers(user)
        user = fresh(user)
        assert backend.get_all_permissions(user) == everything
        assert backend.get_user_permissions(user) == own
        assert backend.get_group_permissions(user) == via_groups
    assert backend.get_all_permissions(fresh(direct)) == {"orders.view_order"}
    assert backend.get_all_permissions(fresh(nobody)) == set()


def test_inactive_users_have_no_permission(mixed_user):
    mixed_user.is_active = False
    mixed_user.save(update_fields=["is_active"])
    user = fresh(mixed_user)
    backend = PermissionsInOneQueryBackend()
    with CaptureQueriesContext(connection) as queries:
        assert backend.get_all_permissions(user) == set()
        assert backend.get_user_permissions(user) == set()
        assert backend.get_group_permissions(user) == set()
        assert not backend.has_perm(user, "clients.view_customer")
        assert not user.has_perm("clients.view_customer")
    assert len(queries) == 0


def test_superusers_have_every_permission():
    superuser = fresh(UserFactory(is_superuser=True))
    every = {
        f"{app}.{codename}"
        for app, codename in Permission.objects.values_list("content_type__app_label", "codename")
    }
    backend = PermissionsInOneQueryBackend()
    with CaptureQueriesContext(connection) as queries:
        assert backend.get_all_permissions(superuser) == every
        assert backend.get_user_permissions(superuser) == every
        assert backend.get_group_permissions(superuser) == every
    assert len(queries) == 1
    assert backend.get_all_permissions(superuser) == ModelBackend().get_all_permissions(
        fresh(superuser)
    )


def test_object_permissions_and_anonymous_users_get_nothing(mixed_user):
    backend = PermissionsInOneQueryBackend()
    assert backend.get_all_permissions(fresh(mixed_user), obj=object()) == set()
    assert backend.get_all_permissions(AnonymousUser()) == set()


def test_async_permission_checks_match(mixed_user):
    _, _, everything = model_backend_answers(mixed_user)
    backend = PermissionsInOneQueryBackend()
    assert async_to_sync(backend.aget_all_permissions)(fresh(mixed_user)) == everything
    assert async_to_sync(backend.ahas_perm)(fresh(mixed_user), "clients.delete_address")


def test_permission_names_are_read_once_and_again_for_a_new_permission(mixed_user, custom_backend):
    _PERMISSION_NAMES.clear()
    first, second = fresh(mixed_user), fresh(mixed_user)
    with CaptureQueriesContext(connection) as queries:
        assert first.has_perm("clients.change_customer")
        assert second.has_perm("clients.change_customer")
    assert len(queries) == 3  # the names, then one query per request
    # A permission created after the names were read (a new model, a data migration).
    new = Permission.objects.create(
        codename="export_customers",
        name="Can export customers",
        content_type=Permission.objects.get(codename="view_customer").content_type,
    )
    mixed_user.user_permissions.add(new)
    assert fresh(mixed_user).has_perm("clients.export_customers")
    assert fresh(mixed_user).get_all_permissions() == model_backend_answers(mixed_user)[2]
