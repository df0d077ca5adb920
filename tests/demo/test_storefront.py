"""The demo storefront page (demo/views.py): DEBUG only."""

import pytest
from django.urls import reverse

from tests.factories import CustomerFactory
from tests.notifications.fixtures_push import vapid_settings  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("vapid_settings")]


def test_the_demo_storefront_exists_only_in_debug(client, settings):
    CustomerFactory()
    settings.DEBUG = False
    assert client.get(reverse("demo:storefront")).status_code == 404
    settings.DEBUG = True
    response = client.get(reverse("demo:storefront"))
    assert response.status_code == 200
    html = response.content.decode()
    assert "notifications/storefront.js" in html and "data-token=" in html
    assert "demo/storefront.js" in html
    assert "<script>" not in html  # only nonce'd external scripts (CSP)
