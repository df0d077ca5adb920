"""Settings > API keys: Admins create (shown once), list and revoke keys."""

import re

import pytest
from django.urls import reverse

from storefront.models import ApiKey
from tests.storefront.conftest import Api, assert_problem

pytestmark = pytest.mark.django_db
URL = "/settings/api-keys/"


def test_admin_creates_a_key_shown_once_and_it_works(admin_client_role):
    response = admin_client_role.post(URL, {"name": "Shopify store", "scopes": ["read"]})
    assert response.status_code == 201
    key = re.search(r'data-testid="new-key">([^<]+)<', response.text).group(1)
    api_key = ApiKey.objects.get()
    assert key.startswith(api_key.prefix) and key not in api_key.digest
    assert api_key.scopes == ["read"] and api_key.created_by is not None
    assert (
        response["Cache-Control"].startswith("max-age=0") or "no-cache" in response["Cache-Control"]
    )
    # Shown once: the list afterwards has the prefix only.
    page = admin_client_role.get(URL)
    assert key not in page.text and api_key.prefix in page.text and "Shopify store" in page.text
    assert Api(key).get("/customers").status_code == 200
    assert "never" not in admin_client_role.get(URL).text  # last used now shown


def test_invalid_form_creates_nothing(admin_client_role):
    response = admin_client_role.post(URL, {"name": "", "scopes": ["nope"]})
    assert response.status_code == 200
    assert "Choose" in response.text or "valid choice" in response.text
    assert not ApiKey.objects.exists()


def test_revoke(admin_client_role):
    admin_client_role.post(URL, {"name": "Old app", "scopes": ["read"]})
    api_key = ApiKey.objects.get()
    response = admin_client_role.post(reverse("storefront:apikey-revoke", args=[api_key.pk]))
    assert response.status_code == 302
    api_key.refresh_from_db()
    assert api_key.revoked_at is not None and api_key.revoked_by is not None


def test_revoked_key_is_refused(admin_client_role):
    response = admin_client_role.post(URL, {"name": "App", "scopes": ["read"]})
    key = re.search(r'data-testid="new-key">([^<]+)<', response.text).group(1)
    admin_client_role.post(reverse("storefront:apikey-revoke", args=[ApiKey.objects.get().pk]))
    assert_problem(Api(key).get("/customers"), 401, "unauthenticated")


def test_viewer_and_staff_get_403_and_no_menu_entry(viewer_client, staff_client, admin_client_role):
    for client in (viewer_client, staff_client):
        assert client.get(URL).status_code == 403
        assert client.post(URL, {"name": "x", "scopes": ["read"]}).status_code == 403
        assert URL not in client.get("/clients/").text
    assert URL in admin_client_role.get("/clients/").text
    assert not ApiKey.objects.exists()


def test_page_in_french(admin_client_role):
    admin_client_role.cookies["django_language"] = "fr"
    page = admin_client_role.get(URL, headers={"Accept-Language": "fr"})
    assert "Clés d’API" in page.text
