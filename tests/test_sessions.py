"""Sessions and the logged-in user, read with plain SQL (backoffice/sessions.py, auth.py)."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.models import Session
from django.utils import timezone

from backoffice.auth import PermissionsInOneQueryBackend
from backoffice.sessions import SessionStore
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_the_project_uses_the_store():
    if settings.STOCK_DJANGO:  # the suite run on Django's own store (README, CI)
        assert settings.SESSION_ENGINE == "django.contrib.sessions.backends.db"
    else:
        assert settings.SESSION_ENGINE == "backoffice.sessions"


def test_a_saved_session_reads_back_and_an_expired_one_does_not():
    store = SessionStore()
    store["cart"] = {"a": 1}
    store.save()
    key = store.session_key
    assert SessionStore(key)["cart"] == {"a": 1}
    Session.objects.filter(session_key=key).update(expire_date=timezone.now() - timedelta(1))
    expired = SessionStore(key)
    assert "cart" not in expired
    assert expired.session_key is None  # a new session, as with Django's store
    assert "cart" not in SessionStore("no-such-session-key-0123456789")


def test_logging_in_and_out_through_the_pages(client):
    user = UserFactory(role="Viewer", password="a long passphrase 42")
    response = client.post(
        "/login/", {"username": user.username, "password": "a long passphrase 42"}
    )
    assert response.status_code == 302
    assert client.get("/clients/").status_code == 200
    key = client.cookies[settings.SESSION_COOKIE_NAME].value
    assert Session.objects.filter(session_key=key).exists()
    client.post("/logout/")
    assert not Session.objects.filter(session_key=key).exists()
    assert client.get("/clients/").status_code == 302


def test_get_user_answers_as_model_backend():
    backend = PermissionsInOneQueryBackend()
    user = UserFactory(role="Staff")
    loaded = backend.get_user(user.pk)
    assert loaded == user and loaded.username == user.username
    # Every column as the ORM reads it (SQLite's dates and booleans converted alike).
    stored = type(user).objects.get(pk=user.pk)
    fields = type(user)._meta.concrete_fields
    assert [getattr(loaded, f.attname) for f in fields] == [
        getattr(stored, f.attname) for f in fields
    ]
    assert loaded._state.adding is False and loaded._state.db == stored._state.db
    assert loaded.password == user.password and loaded.is_active
    assert backend.get_user(str(user.pk)) == user
    assert backend.get_user(user.pk + 1000) is None
    assert backend.get_user("not a number") is None
    user.is_active = False
    user.save()
    assert backend.get_user(user.pk) is None


def test_a_session_naming_a_deleted_user_is_anonymous(client):
    user = UserFactory(role="Viewer")
    client.force_login(user)
    session = client.session
    assert session[SESSION_KEY] == str(user.pk)
    user.delete()
    assert client.get("/clients/").status_code == 302
