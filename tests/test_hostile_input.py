"""Hostile input, property-based: random and malicious query strings and form bodies sent to
every route of the project, as every role. Never a 5xx; never a change from a refused request.

HYPOTHESIS_PROFILE=long runs many more examples than CI does (HYPOTHESIS_PROFILE=ci, the
default, keeps the whole file around a minute on two cores).
"""

import json
import os
from html.parser import HTMLParser
from urllib.parse import urlencode

import pytest
from django.urls import resolve, reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storefront.models import Scope
from storefront.services import api_key_create
from tests.routes import (
    ADMIN_NAMESPACE,
    ROLES,
    World,
    configure_push,
    discover_routes,
    fingerprint,
    route_url,
    storefront_token,
)

pytestmark = pytest.mark.django_db

PROFILES = {"ci": 16, "long": 400}
EXAMPLES = PROFILES[os.environ.get("HYPOTHESIS_PROFILE", "ci")]
HYPOTHESIS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)

# Every parameter name a view or form of the project reads, so the values reach real code.
KNOWN_KEYS = [
    *("q", "source", "medium", "spent_min", "spent_max", "orders_min", "orders_max"),
    *("last_order_after", "last_order_before", "created_after", "created_before"),
    *("last_order_min", "last_order_max", "created_min", "created_max"),
    *("push", "country", "sort", "page", "per_page", "notes", "history"),
    *("version", "base", "first_name", "last_name", "phone", "email"),
    *("name", "company", "line1", "line2", "postal_code", "city", "region"),
    *("billing", "shipping", "text", "based_on"),
    *("tab", "audience", "ids", "query", "title", "body", "link", "icon", "image"),
    *("scope", "file_format"),
    *("ttl", "urgency", "when", "send_at", "customer"),
    *("username", "password", "old_password", "new_password1", "new_password2"),
    *("next", "language", "token", "uidb64"),
]
HOSTILE = [
    *("", " ", "0", "-1", "1.5", "-0", "1e309", "NaN", "Infinity", "0x1F", "007"),
    str(2**63),
    str(-(2**63) - 1),
    "9" * 400,
    "١٢٣",  # Arabic-Indic digits
    "½",
    "\x00",
    "a\x00b",
    "%00",
    "%",
    "\r\n\t",
    "' OR 1=1 --",
    "'; DROP TABLE clients_customer; --",
    '" OR ""="',
    "1; SELECT pg_sleep(10)",
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "{{ 7|add:7 }}{% debug %}",
    "../../../../etc/passwd",
    "javascript:alert(1)",
    "//evil.example.com",
    "https://evil.example.com/",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 🙂 ﷽ é",
    "\u202etxt.exe",
    "2026-02-30",
    "2026-13-45T25:61",
    "9999-12-31",
    "0001-01-01",
    *("true", "false", "None", "null", "[]", "{}", "-last_order", "-", "--name"),
    *("clients", "leads", "all", "selected", "filtered", "later", "now", "high"),
]
hostile_values = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(max_size=40),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.builds(
        lambda s, n: s * n,
        st.sampled_from(["a", "é", "🙂", "1", "<", "%"]),
        st.integers(1000, 20000),
    ),
)
keys = st.one_of(st.sampled_from(KNOWN_KEYS), st.text(min_size=1, max_size=12))
# Repeated keys allowed: a list of pairs, not a dict.
pairs = st.lists(st.tuples(keys, hostile_values), max_size=8)


@st.composite
def submissions(draw, base: list[tuple[str, str]]):
    """Random pairs, or (half the time) the page's own valid form with some values replaced
    by hostile ones and hostile pairs added, so that bad values get past the obvious checks
    (a signed version, a known tab) to the code behind them."""
    if not base or draw(st.booleans()):
        return draw(pairs)
    result = list(base)
    for index in draw(st.sets(st.integers(0, len(base) - 1), max_size=3)):
        result[index] = (result[index][0], draw(hostile_values))
    return result + draw(st.lists(st.tuples(keys, hostile_values), max_size=3))


class _FormFields(HTMLParser):
    """The name/value pairs a browser would submit from every form of a page."""

    def __init__(self):
        super().__init__()
        self.fields = []
        self._textarea = self._select = None
        self._select_value = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        name = a.get("name")
        if tag == "input" and name and name != "csrfmiddlewaretoken":
            kind = a.get("type", "text")
            if kind not in ("submit", "button", "checkbox", "radio") or "checked" in a:
                self.fields.append((name, a.get("value") or ""))
        elif tag == "textarea" and name:
            self._textarea = [name, ""]
        elif tag == "select" and name:
            self._select, self._select_value = name, None
        elif tag == "option" and self._select and (self._select_value is None or "selected" in a):
            self._select_value = a.get("value", "")

    def handle_data(self, data):
        if self._textarea:
            self._textarea[1] += data

    def handle_endtag(self, tag):
        if tag == "textarea" and self._textarea:
            self.fields.append(tuple(self._textarea))
            self._textarea = None
        elif tag == "select" and self._select:
            self.fields.append((self._select, self._select_value or ""))
            self._select = None


def page_form(world, url: str) -> list[tuple[str, str]]:
    """The fields of the forms on the page at `url`, as Admin sees it."""
    response = world.client("Admin").get(url)
    if response.status_code != 200 or "html" not in response.get("Content-Type", ""):
        return []
    parser = _FormFields()
    parser.feed(response.content.decode())
    return parser.fields


# Where a route's page needs a query to show its form.
FORM_QUERY = {"notifications:campaign-create": "?tab=clients&audience=all"}

ROUTES = [
    r
    for r in discover_routes()
    if r.namespace != ADMIN_NAMESPACE or r.name == f"{ADMIN_NAMESPACE}:login"
]
# Routes where a request that succeeds (a redirect after a POST by a logged-in user) may
# change data. Anything else must leave every table as it was.
WRITES = {
    "clients:contact-update",
    "clients:default-addresses-update",
    "clients:address-update",
    "clients:note-update",
    "notifications:campaign-create",
    "notifications:campaign-cancel",
    "password_change",
    "storefront:apikey-list",
    "storefront:apikey-revoke",
    "privacy:overview",
    "privacy:erasure-create",
    "privacy:erasure-cancel",
    "privacy:consent-create",
    "privacy:archive-create",
    "privacy:archive-download",
    # An empty form is the real one: delete the tag; clear the customer's tags.
    "tags:tag-delete",
    "tags:customer-tags-update",
}


@pytest.fixture
def world(settings):
    configure_push(settings)
    return World.create()


def _short(text: str, limit: int = 600) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def _assert_handled(response, what: str) -> None:
    assert response.status_code < 500, _short(f"{what}: {response.status_code}")


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.name)
def test_hostile_query_strings_and_forms(route, world):
    url = route_url(route, world)
    base = page_form(world, url + FORM_QUERY.get(route.name, ""))

    @HYPOTHESIS
    @given(
        role=st.sampled_from(ROLES),
        query=submissions(base),
        form=submissions(base),
        urlencoded=st.booleans(),
        htmx=st.booleans(),
    )
    def check(role, query, form, urlencoded, htmx):
        target = f"{url}?{urlencode(query)}" if query else url
        headers = {"HX-Request": "true"} if htmx else {}
        client = world.client(role)
        before = fingerprint()
        response = client.get(target, headers=headers)
        _assert_handled(response, f"GET {target} as {role}")
        assert fingerprint() == before or route.name == "notifications:click", _short(
            f"GET {target} as {role} changed data"
        )

        if urlencoded:
            body, content_type = urlencode(form), "application/x-www-form-urlencoded"
        else:
            body = {}
            for key, value in form:
                body.setdefault(key, []).append(value)
            content_type = None
        kwargs = {"content_type": content_type} if content_type else {}
        response = client.post(target, body, headers=headers, **kwargs)
        what = f"POST {target} {form!r} as {role}{' (htmx)' if htmx else ''}"
        _assert_handled(response, what)
        # A save that went through answers with a redirect (an htmx editor: with the saved
        # card, a 200; a new API key: 201, the page showing it once); anything else (an
        # invalid form, a refusal) must have changed nothing.
        saved = response.status_code in ((200, 201, 302) if htmx else (201, 302))
        # A data archive's download is the file itself (and marks the archive downloaded).
        saved = saved or response.get("Content-Type") == "application/zip"
        saved = saved and role != "anonymous"
        if not (saved and route.name in WRITES):
            assert fingerprint() == before, _short(f"{what} changed data")

    check()


def test_selected_ids_beyond_the_primary_key_range_are_refused(world):
    client = world.client("Admin")
    for ids in ["9" * 20, str(2**63), "0"]:
        response = client.get("/push/new/", {"tab": "clients", "audience": "selected", "ids": ids})
        assert response.status_code == 400
        assert "The selection is not valid." in response.text


# Routes whose path holds an integer the resolver accepts whatever its size: the back office's
# and the API's (ninja routes are URL patterns too).
INT_ROUTES = [r for r in ROUTES if r.namespace != ADMIN_NAMESPACE and "<int:" in r.route]


def test_ids_past_the_integer_columns_are_not_found(world):
    """Each integer of each route's path in turn (the others real) past bigint: a 404 or a
    refusal, never a 500, nothing changed. The database cannot even compare such a number
    with an integer column (SQLite raises OverflowError). One world for every route: building
    one per route cost a minute of CI."""
    client = world.client("Admin")
    _, key = api_key_create(name="Every scope", scopes=list(Scope.values), actor=None)
    headers = {"Authorization": f"Bearer {key}"}
    failures = []
    for route in INT_ROUTES:
        kwargs = resolve(route_url(route, world)).kwargs
        for name in route.parameters:
            for big in (2**63, 10**30):
                url = reverse(route.name, kwargs={**kwargs, name: big})
                before = _unchanged_by_calls()
                for method in ("get", "post", "patch", "delete"):
                    body = (
                        {}
                        if method == "get"
                        else {"data": "{}", "content_type": "application/json"}
                    )
                    response = getattr(client, method)(url, headers=headers, **body)
                    if response.status_code >= 500:
                        failures.append(f"{method.upper()} {url}: {response.status_code}")
                if _unchanged_by_calls() != before:
                    failures.append(f"{url} changed data")
    assert INT_ROUTES and not failures, failures


def _unchanged_by_calls() -> dict:
    """The fingerprint, but for the API keys (a call records when its key was last used)."""
    return {k: v for k, v in fingerprint().items() if k != "storefront.ApiKey"}


# --- The storefront's JSON API --------------------------------------------------------------

json_values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=False),
        st.sampled_from(HOSTILE),
        st.text(max_size=30),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
API_KEYS = ["token", "subscription", "endpoint", "keys", "p256dh", "auth", "oldEndpoint", "oldAuth"]
STOREFRONT = [
    r for r in ROUTES if r.name.startswith("notifications:storefront-") and "demo" not in r.name
]


@pytest.mark.parametrize("route", STOREFRONT, ids=lambda r: r.name)
def test_hostile_json_to_the_storefront_api(route, world):
    url = route_url(route, world)
    token = storefront_token(world)

    @HYPOTHESIS
    @given(
        body=st.one_of(
            st.dictionaries(st.sampled_from(API_KEYS), json_values, max_size=5),
            json_values,
        ),
        real_token=st.booleans(),
        raw=st.one_of(st.none(), st.binary(max_size=300), st.sampled_from(HOSTILE)),
        content_type=st.sampled_from(
            [
                "application/json",
                "application/json; charset=utf-8",
                "text/plain",
                "application/x-www-form-urlencoded",
            ]
        ),
    )
    def check(body, real_token, raw, content_type):
        if real_token and isinstance(body, dict):
            body = {**body, "token": token}
        payload = raw if raw is not None else json.dumps(body)
        before = fingerprint()
        response = world.client("anonymous").post(url, payload, content_type=content_type)
        _assert_handled(response, f"POST {url} {payload!r}")
        if response.status_code >= 400:
            assert fingerprint() == before, _short(f"POST {url} {payload!r} changed data")

    check()
