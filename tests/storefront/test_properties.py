"""Property-based: requests of every shape, generated from the API's own OpenAPI schema (valid
bodies, bodies with wrong types, unknown fields, hostile strings), sent through HTTP to every
operation. Never a 5xx; every error a problem document; the stored statistics stay exact
(`rebuild_customer_stats --check` clean).

HYPOTHESIS_PROFILE=long runs many more examples than CI does.
"""

import json
import os
import string

import pytest
from django.core.management import call_command
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from notifications.tokens import storefront_token_issue
from tests.factories import AddressFactory, CustomerFactory, make_order
from tests.routes import configure_push
from tests.storefront.conftest import make_key

pytestmark = pytest.mark.django_db

EXAMPLES = {"ci": 120, "long": 2000}[os.environ.get("HYPOTHESIS_PROFILE", "ci")]
HYPOTHESIS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
HOSTILE_STRINGS = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\u202e",
    "' OR 1=1 --",
    "<script>alert(1)</script>",
    "9" * 400,
    "é" * 300,
    "𝔘🙂",
    "1e309",
    "NaN",
    "-1",
    "0",
    str(2**63),
    "2026-13-45T25:61:00Z",
    "2026-11-30T21:00:00",
    "2026-11-30T21:00:00+14:00",
    "http://[::1",
    "https://evil.example/",
    "fr",
    "ios",
    "web",
    "FR",
    "a@b.c",
    "Ada@Example.com",
]
HOSTILE_NUMBERS = [0, -1, 1, 2**31, 2**63, -(2**63) - 1, 10**30, 1.5, -0.0]


def _resolve(schema: dict, root: dict) -> dict:
    while "$ref" in schema:
        schema = root["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _hostile() -> st.SearchStrategy:
    leaf = st.one_of(
        st.sampled_from(HOSTILE_STRINGS),
        st.sampled_from(HOSTILE_NUMBERS),
        st.booleans(),
        st.none(),
        st.text(max_size=40),
    )
    return st.recursive(
        leaf,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
        ),
        max_leaves=6,
    )


def from_schema(schema: dict, root: dict, depth: int = 0) -> st.SearchStrategy:
    """Values for a JSON schema: mostly valid, sometimes not (the API must refuse those)."""
    schema = _resolve(schema, root)
    if depth > 4:
        return st.none()
    if "anyOf" in schema:
        return st.one_of(*(from_schema(s, root, depth + 1) for s in schema["anyOf"]))
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "object":
        properties = schema.get("properties", {})
        required = set(schema.get("required", []))
        fields = {name: from_schema(sub, root, depth + 1) for name, sub in properties.items()}

        @st.composite
        def build(draw):
            value = {}
            for name, strategy in fields.items():
                if name in required or draw(st.booleans()):
                    value[name] = draw(strategy)
            if draw(st.integers(0, 9)) == 0:
                value[draw(st.text(string.ascii_lowercase, min_size=1, max_size=8))] = 1
            return value

        return build()
    if kind == "array":
        return st.lists(from_schema(schema.get("items", {}), root, depth + 1), max_size=3)
    if kind == "string":
        if schema.get("format") == "date-time":
            return st.one_of(
                st.datetimes().map(lambda d: d.isoformat() + "Z"), st.sampled_from(HOSTILE_STRINGS)
            )
        size = schema.get("maxLength", 50)
        return st.one_of(
            st.text(min_size=schema.get("minLength", 0), max_size=min(size, 60)),
            st.emails(),
            st.sampled_from(HOSTILE_STRINGS),
        )
    if kind == "integer":
        return st.one_of(st.integers(0, 10**6), st.sampled_from(HOSTILE_NUMBERS))
    if kind == "number":
        return st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers())
    if kind == "boolean":
        return st.booleans()
    return _hostile()


def _operations(schema: dict) -> list[tuple[str, str, dict]]:
    return [
        (method, path, operation)
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
    ]


@pytest.fixture
def world(settings):
    configure_push(settings)
    settings.STOREFRONT_API_RATE_LIMIT = 10**6
    settings.STOREFRONT_API_CUSTOMER_RATE_LIMIT = 10**6
    customer = CustomerFactory()
    address = AddressFactory(customer=customer)
    make_order(customer, total="30.00")
    return {
        "customer_id": customer.pk,
        "address_id": address.pk,
        "key": make_key(),
        "token": storefront_token_issue(customer_id=customer.pk),
    }


SCHEMA = None


def _schema():
    global SCHEMA
    if SCHEMA is None:
        SCHEMA = json.loads(Client().get("/api/v1/openapi.json").content)
    return SCHEMA


@st.composite
def api_requests(draw, world):
    schema = _schema()
    method, path, operation = draw(st.sampled_from(_operations(schema)))
    url = path
    query = {}
    for parameter in operation.get("parameters", []):
        if parameter["in"] == "path":
            real = world.get(parameter["name"])
            # Ids past PostgreSQL's bigint (and SQLite's integer) too: a lookup that reaches the
            # database with one fails there, unless Django knows the column's range.
            value = draw(
                st.one_of(
                    st.just(real), st.integers(1, 10**6), st.sampled_from([2**62, 2**63, 10**30])
                )
            )
            url = url.replace("{" + parameter["name"] + "}", str(value))
        elif parameter["in"] == "query" and draw(st.booleans()):
            query[parameter["name"]] = draw(from_schema(parameter["schema"], schema))
    body, media = None, "application/json"
    if "requestBody" in operation:
        content = operation["requestBody"]["content"]
        media, spec = next(iter(content.items()))
        body = draw(st.one_of(from_schema(spec["schema"], schema), _hostile()))
    headers = draw(
        st.sampled_from(
            [
                {"Authorization": f"Bearer {world['key']}"},
                {"Authorization": f"Bearer {world['key']}"},
                {"X-Customer-Token": world["token"]},
                {},
            ]
        )
    )
    if method == "post" and draw(st.booleans()):
        headers["Idempotency-Key"] = draw(st.sampled_from(["k1", "k2", "k3"]))
    return method, url, query, (body, media), headers


def test_no_request_shape_breaks_the_api_or_the_statistics(world):
    client = Client()

    @HYPOTHESIS
    @given(request=api_requests(world))
    def check(request):
        method, url, query, (body, media), headers = request
        if query:
            url += "?" + "&".join(
                f"{name}={json.dumps(value) if not isinstance(value, str) else value}"
                for name, value in query.items()
            ).replace(" ", "%20").replace("#", "%23").replace("\x00", "%00")
        kwargs = {"headers": headers}
        if body is not None:
            kwargs.update(data=json.dumps(body), content_type=media)
        response = getattr(client, method)(url, **kwargs)
        assert response.status_code < 500, (method, url, body, response.content[:500])
        if response.status_code >= 400:
            assert response["Content-Type"].startswith("application/problem+json"), (
                method,
                url,
                response.content[:300],
            )
            document = response.json()
            assert document["status"] == response.status_code
            assert document["type"].startswith("/api/v1/problems/")

    check()
    call_command("rebuild_customer_stats", check=True, verbosity=0)
