"""The permission matrix: every URL of the project × every role × GET and POST.

Routes come from the URL resolver (tests/routes.py), so a new route without an entry in
EXPECTED fails `test_every_route_has_an_expectation`. Statuses are checked with a valid
CSRF token; CSRF itself is checked separately.
"""

import pytest
from django.conf import settings
from django.urls import reverse

from tests.routes import (
    ADMIN_NAMESPACE,
    ROLES,
    SECRETS,
    World,
    configure_push,
    discover_routes,
    fingerprint,
    route_url,
    storefront_token,
)

pytestmark = pytest.mark.django_db

LOGIN = "login"  # 302 to the back office's log-in page, coming back here after
ADMIN_LOGIN = "admin-login"  # 302 to the Django admin's log-in page (staff accounts only)
ADMIN_INDEX = "admin-index"
LOGGED_OUT = "logged-out"  # 302 to the log-in page after logging out
ANY_LOGIN = "any-login"  # LOGIN or ADMIN_LOGIN


def E(get, post):
    """Expected statuses, for (anonymous, Viewer, Staff, Admin), of a GET and of a POST."""
    return {"get": get, "post": post}


PROTECTED_READ = E(get=(LOGIN, 200, 200, 200), post=(LOGIN, 405, 405, 405))
# An empty POST to an editor is an invalid form: shown again with its errors (200).
STAFF_EDIT = E(get=(LOGIN, 403, 200, 200), post=(LOGIN, 403, 200, 200))
# Public by design: the language switch, and the storefront's push
# endpoints and click redirect, which customers' browsers call without a back-office login.
PUBLIC_PAGE = E(get=(200, 200, 200, 200), post=(200, 200, 200, 200))
STOREFRONT_POST = E(get=(405, 405, 405, 405), post=(400, 400, 400, 400))
# The storefront API (/api/v1/) authenticates each call with an API key or a customer token,
# never a back-office session: every role is an anonymous caller there. A GET without a key is
# 401; the matrix's form-encoded POST is refused as the wrong media type (415) before anything.
API_READ = E(get=(401,) * 4, post=(405,) * 4)
API_COLLECTION = E(get=(401,) * 4, post=(415,) * 4)
API_POST = E(get=(405,) * 4, post=(415,) * 4)
API_PUBLIC_GET = E(get=(200,) * 4, post=(405,) * 4)

EXPECTED = {
    "home": E(get=(LOGIN, 302, 302, 302), post=(LOGIN, 302, 302, 302)),
    "login": PUBLIC_PAGE,
    "logout": E(get=(LOGIN, 405, 405, 405), post=(LOGIN,) + (LOGGED_OUT,) * 3),
    "password_change": E(get=(LOGIN, 200, 200, 200), post=(LOGIN, 200, 200, 200)),
    "password_change_done": PROTECTED_READ,
    "set_language": E(get=(302, 302, 302, 302), post=(302, 302, 302, 302)),
    "clients:client-list": PROTECTED_READ,
    "clients:lead-list": PROTECTED_READ,
    "clients:client-detail": PROTECTED_READ,
    "lifecycle:dashboard": PROTECTED_READ,
    "lifecycle:overdue": PROTECTED_READ,
    # The push selection: Admin only (who may send); without a tab, 400 (GET) or back to
    # the list with the error (POST).
    "clients:selection": E(get=(LOGIN, 403, 403, 400), post=(LOGIN, 403, 403, 302)),
    "clients:contact-update": STAFF_EDIT,
    "clients:default-addresses-update": STAFF_EDIT,
    "clients:address-update": STAFF_EDIT,
    # An empty POST does not say which version of the note it edits: refused as a conflict.
    "clients:note-update": E(get=(LOGIN, 403, 200, 200), post=(LOGIN, 403, 409, 409)),
    "orders:order-detail": PROTECTED_READ,
    "notifications:campaign-list": PROTECTED_READ,
    "notifications:campaign-detail": PROTECTED_READ,
    # Without an audience the compose page explains the problem (400); only Admin sends.
    "notifications:campaign-create": E(get=(LOGIN, 403, 403, 400), post=(LOGIN, 403, 403, 400)),
    "notifications:campaign-cancel": E(get=(LOGIN, 405, 405, 405), post=(LOGIN, 403, 403, 302)),
    # Without an audience: explained (400); only Admin sends a test.
    "notifications:campaign-test": E(get=(LOGIN, 405, 405, 405), post=(LOGIN, 403, 403, 400)),
    "notifications:click": E(get=(302, 302, 302, 302), post=(405, 405, 405, 405)),
    "notifications:storefront-key": E(get=(200, 200, 200, 200), post=(405, 405, 405, 405)),
    "notifications:storefront-subscribe": STOREFRONT_POST,
    "notifications:storefront-unsubscribe": STOREFRONT_POST,
    "notifications:storefront-resubscribe": STOREFRONT_POST,
    # The demo storefront exists only with DEBUG on.
    "demo:storefront": E(get=(404, 404, 404, 404), post=(404, 404, 404, 404)),
    # Settings > API keys: Admins only. An empty POST is an invalid form, shown again (200).
    # Exports: every role that reads customers; an export's page and file only to the user
    # who asked (the world's is the Admin's, still being built: 410 Gone for its file).
    "exports:export-list": PROTECTED_READ,
    "exports:export-create": E(get=(LOGIN, 405, 405, 405), post=(LOGIN, 400, 400, 400)),
    "exports:export-detail": E(get=(LOGIN, 404, 404, 200), post=(LOGIN, 405, 405, 405)),
    "exports:export-download": E(get=(LOGIN, 404, 404, 410), post=(LOGIN, 405, 405, 405)),
    "storefront:apikey-list": E(get=(LOGIN, 403, 403, 200), post=(LOGIN, 403, 403, 200)),
    "storefront:apikey-revoke": E(get=(LOGIN, 405, 405, 405), post=(LOGIN, 403, 403, 302)),
    # Privacy: Admins only, but Staff record consents. Empty POSTs are invalid forms (400).
    "privacy:overview": E(get=(LOGIN, 403, 403, 200), post=(LOGIN, 403, 403, 400)),
    "privacy:audit": E(get=(LOGIN, 403, 403, 200), post=(LOGIN, 403, 403, 405)),
    "privacy:erasure-create": E(get=(LOGIN, 403, 403, 200), post=(LOGIN, 403, 403, 400)),
    "privacy:erasure-cancel": E(get=(LOGIN, 403, 403, 405), post=(LOGIN, 403, 403, 302)),
    "privacy:consent-create": E(get=(LOGIN, 403, 200, 200), post=(LOGIN, 403, 400, 400)),
    "privacy:archive-create": E(get=(LOGIN, 403, 403, 405), post=(LOGIN, 403, 403, 302)),
    "privacy:archive-detail": E(get=(LOGIN, 403, 403, 200), post=(LOGIN, 403, 403, 405)),
    "privacy:archive-download": E(get=(LOGIN, 403, 403, 405), post=(LOGIN, 403, 403, 200)),
    # Saved segments and tags (issue 14): Staff and Admin change them (an empty POST is
    # refused with a message on the list or library: 302), everyone reads them. The two
    # deletions run as Staff first: Admin then meets the deleted object (404).
    "segments:segment-create": E(get=(LOGIN, 405, 405, 405), post=(LOGIN, 403, 302, 302)),
    "segments:segment-detail": E(get=(LOGIN, 302, 302, 302), post=(LOGIN, 405, 405, 405)),
    "segments:segment-rename": E(get=(LOGIN, 405, 405, 405), post=(LOGIN, 403, 302, 302)),
    "segments:segment-delete": E(get=(LOGIN, 405, 405, 405), post=(LOGIN, 403, 302, 404)),
    "tags:tag-list": PROTECTED_READ,
    "tags:tag-rename": E(get=(LOGIN, 405, 405, 405), post=(LOGIN, 403, 302, 302)),
    "tags:tag-merge": E(get=(LOGIN, 405, 405, 405), post=(LOGIN, 403, 302, 302)),
    "tags:tag-delete": E(get=(LOGIN, 405, 405, 405), post=(LOGIN, 403, 302, 404)),
    "tags:customer-tags-update": E(get=(LOGIN, 405, 405, 405), post=(LOGIN, 403, 302, 302)),
    "tags:bulk-tag": E(get=(LOGIN, 405, 405, 405), post=(LOGIN, 403, 302, 302)),
    "tags:job-detail": PROTECTED_READ,
    # Imports: Admins only. An empty upload or column choice is an invalid form (400); a
    # POST to apply, cancel or resume the checked import redirects to it.
    "imports:job-list": E(get=(LOGIN, 403, 403, 200), post=(LOGIN, 403, 403, 400)),
    "imports:job-detail": E(get=(LOGIN, 403, 403, 200), post=(LOGIN, 405, 405, 405)),
    "imports:job-mapping": E(get=(LOGIN, 403, 403, 200), post=(LOGIN, 403, 403, 400)),
    "imports:job-apply": E(get=(LOGIN, 405, 405, 405), post=(LOGIN, 403, 403, 302)),
    "imports:job-cancel": E(get=(LOGIN, 405, 405, 405), post=(LOGIN, 403, 403, 302)),
    "imports:job-resume": E(get=(LOGIN, 405, 405, 405), post=(LOGIN, 403, 403, 302)),
    "imports:job-refused-csv": E(get=(LOGIN, 403, 403, 200), post=(LOGIN, 405, 405, 405)),
    "api-docs": API_PUBLIC_GET,
    "api-problem": API_PUBLIC_GET,
    "api-schema": API_PUBLIC_GET,
    "api:api-root": E(get=(404,) * 4, post=(404,) * 4),
    "api:customer-list": API_COLLECTION,
    "api:customer-create": API_COLLECTION,
    "api:customer-detail": API_READ,
    "api:customer-update": API_READ,
    "api:address-list": API_COLLECTION,
    "api:address-create": API_COLLECTION,
    "api:address-detail": API_READ,
    "api:address-update": API_READ,
    "api:address-delete": API_READ,
    "api:launch-create": API_POST,
    "api:customer-launches": API_READ,
    "api:push-key": API_PUBLIC_GET,
    "api:push-subscribe": API_POST,
    "api:push-unsubscribe": API_POST,
    "api:push-resubscribe": API_POST,
    "api:order-list": API_COLLECTION,
    "api:order-create": API_COLLECTION,
    "api:order-detail": API_READ,
    "api:order-pay": API_POST,
    "api:order-fulfil": API_POST,
    "api:order-cancel": API_POST,
    "api:order-refund": API_POST,
    "api:import": API_POST,
    # The Django admin is for staff accounts (is_staff); none of the roles is one.
    "admin:login": PUBLIC_PAGE,
    "admin:logout": E(
        get=(ADMIN_LOGIN,) + (ADMIN_INDEX,) * 3, post=(ADMIN_LOGIN,) + (ADMIN_INDEX,) * 3
    ),
}
# Every other page of the Django admin.
# (Anonymous users meet the back office's log-in first, or the admin's for its index.)
ADMIN_DEFAULT = E(get=(ANY_LOGIN,) + (ADMIN_LOGIN,) * 3, post=(ANY_LOGIN,) + (ADMIN_LOGIN,) * 3)

API_ROUTES = {name for name in EXPECTED if name.startswith(("api:", "api-"))}

# Reachable without logging in (anything that does not redirect anonymous users to log in).
PUBLIC = {
    *API_ROUTES,
    "login",
    "set_language",
    "notifications:click",
    "notifications:storefront-key",
    "notifications:storefront-subscribe",
    "notifications:storefront-unsubscribe",
    "notifications:storefront-resubscribe",
    "demo:storefront",
    "admin:login",
}
# POST endpoints without CSRF protection: called cross-site by the storefront, without cookies.
CSRF_EXEMPT = {
    *API_ROUTES,
    "notifications:storefront-key",
    "notifications:storefront-subscribe",
    "notifications:storefront-unsubscribe",
    "notifications:storefront-resubscribe",
}
# GET requests that change data by design: counting a notification's click.
GET_WRITES = {"notifications:click"}

ROUTES = discover_routes()


def expected_for(route) -> dict:
    if route.name in EXPECTED:
        return EXPECTED[route.name]
    if route.namespace == ADMIN_NAMESPACE:
        return ADMIN_DEFAULT
    raise AssertionError(f"No expectation for {route.name} ({route.route}): add it to EXPECTED.")


@pytest.fixture
def world(settings):
    configure_push(settings)
    return World.create()


def _outcome(response, expected) -> bool:
    if expected == LOGIN:
        return response.status_code == 302 and response["Location"].startswith(
            reverse(settings.LOGIN_URL) + "?next="
        )
    if expected == ADMIN_LOGIN:
        return response.status_code == 302 and response["Location"].startswith(
            reverse("admin:login")
        )
    if expected == ANY_LOGIN:
        return _outcome(response, LOGIN) or _outcome(response, ADMIN_LOGIN)
    if expected == LOGGED_OUT:
        return response.status_code == 302 and response["Location"] == reverse(settings.LOGIN_URL)
    if expected == ADMIN_INDEX:
        return response.status_code == 302 and response["Location"] == reverse("admin:index")
    return response.status_code == expected


def test_every_route_has_an_expectation():
    ours = {r.name for r in ROUTES if r.namespace != ADMIN_NAMESPACE}
    missing = sorted(ours - set(EXPECTED))
    assert not missing, f"Routes without an entry in EXPECTED: {missing}"
    stale = sorted(
        name for name in set(EXPECTED) - ours if not name.startswith(f"{ADMIN_NAMESPACE}:")
    )
    assert not stale, f"Entries in EXPECTED for routes that no longer exist: {stale}"
    assert {name for name in PUBLIC | CSRF_EXEMPT | GET_WRITES} <= {r.name for r in ROUTES}


def test_public_routes_are_exactly_the_listed_ones():
    """Anonymous users are sent to log in everywhere except the routes listed in PUBLIC."""
    for route in ROUTES:
        anonymous = expected_for(route)["get"][0]
        is_public = anonymous not in (LOGIN, ADMIN_LOGIN, ANY_LOGIN)
        assert is_public == (route.name in PUBLIC), route.name


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.name)
def test_permission_matrix(route, world):
    expected = expected_for(route)
    url = route_url(route, world)
    wrong = []
    for method in ("get", "post"):
        for role, want in zip(ROLES, expected[method], strict=True):
            client = world.client(role, enforce_csrf=True)
            data = {"csrfmiddlewaretoken": client.csrf_token} if method == "post" else {}
            response = getattr(client, method)(url, data)
            if not _outcome(response, want):
                where = response.get("Location", "")
                wrong.append(f"{method.upper()} as {role}: {response.status_code} {where}")
                wrong[-1] += f" (expected {want})"
    assert not wrong, f"{url}: " + "; ".join(wrong)


@pytest.mark.parametrize(
    "route",
    [r for r in ROUTES if r.namespace != ADMIN_NAMESPACE],
    ids=lambda r: r.name,
)
def test_post_without_csrf_token_is_refused(route, world):
    client = world.client("Admin", enforce_csrf=True)
    response = client.post(route_url(route, world), {})
    if route.name in CSRF_EXEMPT:
        assert response.status_code != 403
    else:
        assert response.status_code == 403
        assert "CSRF" in response.text


def test_get_requests_change_nothing(world):
    # The URLs first: some are made by creating their object (a planned erasure, an archive).
    urls = [route_url(route, world) for route in ROUTES if route.name not in GET_WRITES]
    before = fingerprint()
    for url in urls:
        for role in ROLES:
            world.client(role).get(url)
    assert fingerprint() == before


def test_nothing_private_is_reachable_without_logging_in(world):
    """Every route, anonymously, with GET and POST, with queries and bodies pointing at the
    customer: no note, email, name or phone of a customer in any response."""
    token = storefront_token(world)
    # (Not the secrets themselves: a redirect to log in rightly echoes the query in ?next=.)
    pk = str(world.customer.pk)
    probes = {"q": pk, "customer": pk, "pk": pk, "id": pk, "next": f"/clients/{pk}/"}
    bodies = [
        {"token": token, "endpoint": world.subscription.endpoint},
        {"token": token, "subscription": {"endpoint": world.subscription.endpoint}},
    ]
    seen = 0
    for route in ROUTES:
        url = route_url(route, world)
        client = world.client("anonymous")
        responses = [client.get(url), client.get(url, probes), client.post(url, probes)]
        responses += [client.post(url, body, content_type="application/json") for body in bodies]
        for response in responses:
            seen += 1
            text = response.content.decode(errors="replace") + str(response.headers)
            leaked = [what for what, secret in SECRETS.items() if secret in text]
            assert not leaked, f"{route.name}: {response.status_code} shows {leaked}"
    assert seen == len(ROUTES) * 5


def test_the_secrets_are_on_the_client_page_for_staff(world):
    """The leak test above would notice: the same markers are on the page staff see."""
    page = world.client("Viewer").get(reverse("clients:client-detail", args=[world.customer.pk]))
    assert page.status_code == 200
    assert all(secret in page.text for secret in SECRETS.values())
