"""The side menu (templates/base.html), cached per language, section and permissions, and the
language switch, cached per language."""

import re

import pytest
from django.contrib.auth.models import Permission
from django.core.cache import cache

from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

MENU = re.compile(r'<ul class="menu">.*?</ul>', re.S)


def _menu(response) -> str:
    return MENU.search(response.content.decode()).group()


def test_the_menu_is_rendered_once_per_section_and_marks_the_current_one(staff_client, monkeypatch):
    cache.clear()
    customers = CustomerFactory(), CustomerFactory()
    stored = []
    real_set = cache.set

    def spy(key, *args, **kwargs):
        stored.append(key)
        return real_set(key, *args, **kwargs)

    monkeypatch.setattr(cache, "set", spy)
    first = staff_client.get(f"/clients/{customers[0].pk}/")
    second = staff_client.get(f"/clients/{customers[1].pk}/")
    listed = staff_client.get("/clients/")
    menus = [key for key in stored if ".menu." in key]
    assert len(menus) == 1
    assert _menu(first) == _menu(second) == _menu(listed)
    assert '<a href="/clients/" aria-current="page">' in _menu(first)
    tags = _menu(staff_client.get("/tags/"))
    assert '<a href="/tags/" aria-current="page">' in tags
    assert '<a href="/clients/" aria-current="page">' not in tags
    assert len([key for key in stored if ".menu." in key]) == 2


def test_a_permission_given_shows_in_the_menu_at_once(viewer_client, django_user_model):
    cache.clear()
    assert "/privacy/" not in _menu(viewer_client.get("/clients/"))
    user = django_user_model.objects.get(pk=viewer_client.session["_auth_user_id"])
    user.user_permissions.add(Permission.objects.get(codename="manage_privacy"))
    assert "/privacy/" in _menu(viewer_client.get("/clients/"))


def test_the_language_switch_choices_are_rendered_once_per_language(
    staff_client, client, monkeypatch
):
    cache.clear()
    stored = []
    real_set = cache.set
    monkeypatch.setattr(
        cache, "set", lambda key, *a, **k: stored.append(key) or real_set(key, *a, **k)
    )
    pages = [
        staff_client.get("/clients/"),
        staff_client.get("/tags/"),
        client.get("/login/"),
        staff_client.get("/clients/", HTTP_ACCEPT_LANGUAGE="fr"),
    ]
    assert len([key for key in stored if "language_choices" in key]) == 2
    english, french = pages[0].content.decode(), pages[3].content.decode()
    assert '<span class="language-current" lang="en" aria-current="true">English</span>' in english
    assert '<button type="submit" name="language" value="fr" lang="fr"' in english
    assert '<span class="language-current" lang="fr" aria-current="true">Français</span>' in french
