"""What a schema-driven fuzzer (schemathesis, every check) found wrong, each through HTTP: the
server and its OpenAPI schema must agree on every request and every response."""

import pytest

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
