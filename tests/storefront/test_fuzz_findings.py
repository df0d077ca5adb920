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
