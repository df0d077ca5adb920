"""What a schema-driven fuzzer (schemathesis, every check) found wrong, each through HTTP: the
server and its OpenAPI schema must agree on every request and every response."""

import re

import pytest

from tests.factories import CustomerFactory, make_order
from tests.storefront.conftest import assert_problem

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("name", ["email", "external_id"])
def test_a_nul_byte_in_a_text_filter_is_a_validation_problem(api, name):
    # PostgreSQL refuses NUL in text: the list answered 500.
    document = assert_problem(api.get(f"/customers?{name}=a%00b"), 422, "validation")
    assert document["errors"][0]["field"] == name


@pytest.mark.parametrize("path", ["/customers?updated_since=", "/orders?placed_since="])
@pytest.mark.parametrize("value", ["0.5", "1700000000", "2026-12-01"])
def test_a_time_filter_is_a_date_time_not_a_unix_time(api, path, value):
    # The schema says date-time; Pydantic took "0.5" as a Unix time and the list answered 200.
    document = assert_problem(api.get(path + value), 422, "validation")
    assert document["errors"][0]["field"] in ("updated_since", "placed_since")


def test_a_time_in_a_body_is_a_date_time_string_not_a_number(api):
    body = {"platform": "web", "occurred_at": 1764600000}
    document = assert_problem(api.post("/launches", body), 422, "validation")
    assert document["errors"] == [
        {"field": "occurred_at", "message": "must be a date and time such as 2026-11-30T21:45:00Z"}
    ]


@pytest.mark.parametrize(
    ("path", "cursors"),
    [
        ("/customers", ["0-0", "99999999999999999-999999999999999999", "1764600000000000-12"]),
        ("/orders", ["0", "999999999999999999", "000012"]),
    ],
)
def test_every_cursor_of_the_documented_form_is_a_page(api, path, cursors):
    # The cursors were opaque base64 that the API refused (422) unless it had written them, so
    # a fuzzer building one from the schema always got a 422 for a schema-valid request.
    schema = api.client.get("/api/v1/openapi.json").json()
    parameters = schema["paths"]["/api/v1" + path]["get"]["parameters"]
    (cursor,) = [p for p in parameters if p["name"] == "cursor"]
    pattern = cursor["schema"]["anyOf"][0]["pattern"]
    for value in cursors:
        assert re.fullmatch(pattern, value)
        response = api.get(f"{path}?cursor={value}")
        assert response.status_code == 200, response.content


@pytest.mark.parametrize("path", ["/customers", "/orders"])
@pytest.mark.parametrize("value", ["", "garbage", "1-", "-1", "1.5", "１２"])
def test_a_cursor_not_of_the_documented_form_is_a_validation_problem(api, path, value):
    document = assert_problem(api.get(f"{path}?cursor={value}"), 422, "validation")
    assert document["errors"][0]["field"] == "cursor"


def test_the_cursors_the_lists_return_are_of_the_documented_form(api):
    for _ in range(3):
        make_order(CustomerFactory())
    schema = api.client.get("/api/v1/openapi.json").json()
    for path in ("/customers", "/orders"):
        parameters = schema["paths"]["/api/v1" + path]["get"]["parameters"]
        (cursor,) = [p for p in parameters if p["name"] == "cursor"]
        page = api.get(f"{path}?limit=1").json()
        assert re.fullmatch(cursor["schema"]["anyOf"][0]["pattern"], page["next_cursor"])
