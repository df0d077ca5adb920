"""Responses to logged-in users are never cached; pages are compressed; htmx requests that
lost their session are sent to the login page as a page."""

import gzip

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils.cache import get_max_age

from tests.routes import ROLES, World, configure_push, discover_routes, route_url

pytestmark = pytest.mark.django_db

ROUTES = discover_routes()


@pytest.fixture
def world(settings):
    configure_push(settings)
    return World.create()


def _directives(response) -> set[str]:
    return {d.strip() for d in response.get("Cache-Control", "").split(",") if d.strip()}


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.name)
def test_every_route_is_private_and_not_stored_for_logged_in_users(route, world):
    url = route_url(route, world)
    wrong = []
    for role in ROLES[1:]:
        client = world.client(role)
        for method in ("get", "post"):
            data = {"csrfmiddlewaretoken": client.csrf_token} if method == "post" else {}
            response = getattr(client, method)(url, data)
            directives = _directives(response)
            if not {"private", "no-store"} <= directives or "public" in directives:
                wrong.append(f"{method.upper()} as {role}: {response.status_code} {directives}")
            elif get_max_age(response):
                wrong.append(f"{method.upper()} as {role}: max-age {get_max_age(response)}")
    assert not wrong, f"{url}: " + "; ".join(wrong)


def test_pages_are_compressed_for_browsers_that_accept_gzip(viewer_client):
    plain = viewer_client.get(reverse("clients:client-list"))
    assert "Content-Encoding" not in plain
    packed = viewer_client.get(reverse("clients:client-list"), headers={"accept-encoding": "gzip"})
    assert packed["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in packed["Vary"]
    text = gzip.decompress(packed.content).decode()
    assert "</html>" in text
    assert len(packed.content) < len(plain.content) / 3


@pytest.mark.parametrize(
    "path",
    ["/push/1/", "/clients/", "/clients/1/contact/"],
)
def test_htmx_requests_without_a_session_get_hx_redirect_to_log_in(client, path):
    response = client.get(
        path,
        headers={"hx-request": "true", "hx-current-url": "http://testserver/push/1/?x=1"},
    )
    assert response.status_code == 204
    assert response.content == b""
    login = reverse(settings.LOGIN_URL)
    assert response["HX-Redirect"] == f"{login}?next=/push/1/%3Fx%3D1"


def test_htmx_redirect_never_points_off_site(client):
    response = client.get(
        "/push/1/", headers={"hx-request": "true", "hx-current-url": "//evil.example/x"}
    )
    assert response["HX-Redirect"].startswith(reverse(settings.LOGIN_URL) + "?next=/")
    assert "evil" not in response["HX-Redirect"]


def test_plain_requests_without_a_session_are_still_redirected(client):
    response = client.get("/push/1/")
    assert response.status_code == 302
    assert "HX-Redirect" not in response


@pytest.mark.parametrize("path", ["/no-such-page/", "/clients/999999/", "/push/999999/"])
def test_the_apps_own_404_page_with_debug_on(viewer_client, settings, path):
    settings.DEBUG = True
    response = viewer_client.get(path, headers={"accept-language": "fr"})
    assert response.status_code == 404
    assert "Cette page n’existe pas." in response.text
    assert "URLconf" not in response.text and "DEBUG = True" not in response.text
    assert "private" in response["Cache-Control"]


def test_the_404_page_for_anonymous_users_with_debug_on(client, settings):
    settings.DEBUG = True
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert "This page does not exist." in response.text
    assert "URLconf" not in response.text
