"""What a schema-driven fuzzer (schemathesis, every check) found wrong, each through HTTP: the
server and its OpenAPI schema must agree on every request and every response."""

import re
from datetime import timedelta
from urllib.parse import quote

import pytest
from django.utils import timezone

from clients.models import Address, AuditEntry
from tests.factories import AddressFactory, CustomerFactory, make_order
from tests.storefront.conftest import Api, assert_problem, make_key

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


def _operations():
    from storefront.api import openapi_schema

    schema = openapi_schema()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            yield path, method, operation


def _documented(operation, status: int) -> dict:
    from storefront.api import openapi_schema

    responses = operation["responses"]
    assert status in responses, (status, sorted(map(str, responses)))
    response = responses[status]
    if "$ref" in response:
        response = openapi_schema()["components"]["responses"][response["$ref"].split("/")[-1]]
    assert "application/problem+json" in response["content"]
    return response


def _concrete(path: str) -> str:
    return re.sub(r"\{[a-z_]+\}", "1", path)


@pytest.mark.parametrize(("path", "method", "operation"), list(_operations()))
def test_each_error_the_pipeline_answers_is_documented_for_the_operation(
    db, path, method, operation
):
    # The schema documented only `default` for errors: status_code_conformance passed, but a
    # client generated from it knew no 401, 404, 413, 415, 422 or 429, nor their headers.
    client = Api(None)
    url = _concrete(path).removeprefix("/api/v1")
    if operation.get("security"):
        response = client.call(method, url, raw=b"")
        assert response.status_code == 401
        documented = _documented(operation, 401)
        for name, header in documented.get("headers", {}).items():
            assert not header["required"] or name in response, name
        client = Api(make_key())
    response = client.call(method, url + "?no_such_parameter=1", raw=b"")
    assert response.status_code == 422, response.content
    _documented(operation, 422)
    if method in ("post", "patch"):
        if not path.endswith("/import"):  # 20 MB allowed there
            big = b"[" + b"0," * 40_000 + b"0]"
            assert client.call(method, url, raw=big).status_code == 413
        _documented(operation, 413)
        assert client.call(method, url, raw=b"x", content_type="text/plain").status_code == 415
        _documented(operation, 415)
    if "{" in path:
        missing = re.sub(r"\{[a-z_]+\}", "999999", path).removeprefix("/api/v1")
        response = client.call(method, missing, raw=b"")
        if response.status_code == 404:
            _documented(operation, 404)


def test_every_401_names_its_scheme(api):
    for headers in (
        {"Authorization": "Bearer bo_unknown0_secret"},
        {"Authorization": "Basic Zm9vOmJhcg=="},
    ):
        response = Api(None).get("/customers/1", headers=headers)
        assert_problem(response, 401, "unauthenticated")
        assert response["WWW-Authenticate"] == "Bearer"
    response = Api(None).post(
        "/launches", {"platform": "web"}, headers={"X-Customer-Token": "1.2.3"}
    )
    assert_problem(response, 401, "unauthenticated")
    assert response["WWW-Authenticate"] == "Bearer"


def test_a_429_documents_and_sends_retry_after(api, settings):
    settings.STOREFRONT_API_RATE_LIMIT = 1
    api.get("/customers")
    response = api.get("/customers")
    assert_problem(response, 429, "rate-limited")
    (operation,) = [o for p, m, o in _operations() if p == "/api/v1/customers" and m == "get"]
    header = _documented(operation, 429)["headers"]["Retry-After"]
    assert header["required"] and int(response["Retry-After"]) >= 1


def test_an_amount_sent_as_a_number_has_at_most_2_decimals_in_the_schema_too(api):
    # The schema allowed any number > 0 for a refund: 5e-324 was schema-valid, then refused.
    customer = CustomerFactory()
    order = make_order(customer, total="50.00")
    schema = api.client.get("/api/v1/openapi.json").json()
    refund = schema["components"]["schemas"]["RefundCreate"]["properties"]["amount"]
    line = schema["components"]["schemas"]["LineIn"]["properties"]["unit_price"]
    for amount in (refund, line):
        (number,) = [branch for branch in amount["anyOf"] if branch["type"] == "number"]
        assert number["multipleOf"] == 0.01
    refused = api.post(f"/orders/{order.number}/refunds", {"amount": 5e-324})
    assert_problem(refused, 422, "validation")
    accepted = api.post(f"/orders/{order.number}/refunds", {"amount": 19.9})
    assert accepted.status_code == 200, accepted.content
    assert accepted.json()["refunded_amount"] == "19.90"


@pytest.mark.parametrize("amount", [0.1 + 0.2, 19.999, 5e-324])
def test_a_number_with_more_than_2_decimals_is_refused_for_its_decimals(api, amount):
    # 0.1 + 0.2 (0.30000000000000004) was refused as having "no more than 12 digits": the
    # decimals were wrong, not the size.
    customer = CustomerFactory()
    order = make_order(customer, total="50.00")
    refused = api.post(f"/orders/{order.number}/refunds", {"amount": amount})
    document = assert_problem(refused, 422, "validation")
    assert document["errors"] == [
        {
            "field": "amount",
            "message": "must be an amount with at most 2 decimals, e.g. 19.9 or 19.90",
        }
    ]
    order.refresh_from_db()
    assert order.refunded_amount == 0


def _matches(branch: dict, body: dict) -> bool:
    """Whether `body` fits a oneOf branch of the form the schema uses (required, types)."""
    types = {"integer": int, "string": str, "null": type(None)}
    return all(name in body for name in branch["required"]) and all(
        isinstance(body[name], types[rule["type"]])
        for name, rule in branch["properties"].items()
        if name in body
    )


def test_the_schema_says_an_order_names_exactly_one_customer(api):
    # The schema allowed both customer_id and customer_external_id, or neither: schema-valid
    # orders refused with 422 ("give exactly one").
    customer = CustomerFactory(external_id="shop-7")
    schema = api.client.get("/api/v1/openapi.json").json()
    branches = schema["components"]["schemas"]["OrderCreate"]["oneOf"]
    lines = [{"product_name": "Mug", "quantity": 1, "unit_price": "9.90"}]
    choices = [{}, {"customer_id": customer.pk}, {"customer_id": None}]
    others = [{}, {"customer_external_id": "shop-7"}, {"customer_external_id": None}]
    for number, (one, other) in enumerate((a, b) for a in choices for b in others):
        body = {"number": f"ONE-{number}", "lines": lines, **one, **other}
        valid = sum(_matches(branch, body) for branch in branches) == 1
        response = api.post("/orders", body)
        assert response.status_code == (201 if valid else 422), (body, response.content)


def test_the_schema_says_the_only_currency_accepted_is_the_shops(api, settings):
    # The schema allowed any three letters: a schema-valid order in "AAA" was refused (422).
    customer = CustomerFactory()
    schema = api.client.get("/api/v1/openapi.json").json()
    currency = schema["components"]["schemas"]["OrderCreate"]["properties"]["currency"]
    (text,) = [branch for branch in currency["anyOf"] if branch["type"] == "string"]
    lines = [{"product_name": "Mug", "quantity": 1, "unit_price": "9.90"}]
    shop = settings.SHOP_CURRENCY
    for number, code in enumerate([shop, shop.lower(), shop.title(), "AAA", "usd"]):
        body = {"number": f"CUR-{number}", "customer_id": customer.pk, "lines": lines}
        response = api.post("/orders", {**body, "currency": code})
        expected = 201 if re.fullmatch(text["pattern"], code) else 422
        assert response.status_code == expected, (code, response.content)


@pytest.mark.parametrize(
    "placed_at", ["0001-01-01T00:00:00Z", "0001-01-30T00:00:00+14:00", "1989-12-31T23:59:59Z"]
)
def test_an_order_placed_in_the_year_1_is_refused_not_a_500(api, placed_at):
    # placed_at - the attribution window was no date: OverflowError, a 500.
    customer = CustomerFactory()
    lines = [{"product_name": "Mug", "quantity": 1, "unit_price": "9.90"}]
    body = {"number": "OLD-1", "customer_id": customer.pk, "lines": lines}
    response = api.post("/orders", {**body, "placed_at": placed_at})
    document = assert_problem(response, 422, "validation")
    assert document["errors"][0]["field"] == "placed_at"


@pytest.mark.parametrize("path", ["/customers?updated_since=", "/orders?placed_since="])
@pytest.mark.parametrize(
    "value", ["0001-01-01T00:00:00%2B14:00", "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00Z"]
)
def test_time_filters_at_the_ends_of_the_calendar_are_pages(api, path, value):
    assert api.get(path + value).status_code == 200


def _property(api, schema_name: str, name: str) -> dict:
    schema = api.client.get("/api/v1/openapi.json").json()
    return schema["components"]["schemas"][schema_name]["properties"][name]


def _string_pattern(rule: dict) -> str:
    (text,) = [branch for branch in rule.get("anyOf", [rule]) if branch.get("type") == "string"]
    return text["pattern"]


LINE = {"product_name": "Mug", "quantity": 1, "unit_price": "9.90"}


@pytest.mark.parametrize(
    "amount", ["1e2", "1E1", "+5", " 5", "5 ", "\u0665", "5.000", "1_000", ".5", "5.", "-0"]
)
def test_an_amount_written_otherwise_than_the_schema_says_is_refused(api, amount):
    # Decimal() read all of these (the Arabic-Indic digit as 5, "1_000" as 1000): orders were
    # placed with amounts the schema's pattern forbids.
    customer = CustomerFactory()
    assert not re.search(_string_pattern(_property(api, "LineIn", "unit_price")), amount)
    body = {
        "number": "AMT-1",
        "customer_id": customer.pk,
        "lines": [{**LINE, "unit_price": amount}],
    }
    document = assert_problem(api.post("/orders", body), 422, "validation")
    assert document["errors"][0]["field"] == "lines.0.unit_price"
    order = make_order(customer, total="50.00")
    refund = api.post(f"/orders/{order.number}/refunds", {"amount": amount})
    assert_problem(refund, 422, "validation")


@pytest.mark.parametrize(("amount", "stored"), [("5", "5.00"), ("0005.5", "5.50"), (5.5, "5.50")])
def test_an_amount_written_as_the_schema_says_is_accepted(api, amount, stored):
    customer = CustomerFactory()
    body = {
        "number": "AMT-2",
        "customer_id": customer.pk,
        "lines": [{**LINE, "unit_price": amount}],
    }
    response = api.post("/orders", body)
    assert response.status_code == 201, response.content
    assert response.json()["total"] == stored


def test_a_patterned_string_is_checked_as_sent_not_stripped_first(api):
    # Every string was stripped before its pattern was checked: " W-1", " EUR", " FR", " fr"
    # and a cursor with a space were accepted although the schema forbids them.
    customer = CustomerFactory()
    order = {"number": "W-1", "customer_id": customer.pk, "lines": [LINE]}
    address = {"name": "Ada", "line1": "1 rue", "postal_code": "75001", "city": "Paris"}
    cases = [
        ("/orders", "OrderCreate", "number", {**order, "number": " W-1"}),
        ("/orders", "OrderCreate", "currency", {**order, "currency": " EUR"}),
        (
            f"/customers/{customer.pk}/addresses",
            "AddressCreate",
            "country",
            {**address, "country": " FR"},
        ),
    ]
    for path, schema_name, name, body in cases:
        assert not re.search(_string_pattern(_property(api, schema_name, name)), body[name])
        document = assert_problem(api.post(path, body), 422, "validation")
        assert document["errors"][0]["field"] == name
    document = assert_problem(
        api.patch(f"/customers/{customer.pk}", {"language": " fr"}), 422, "validation"
    )
    assert document["errors"][0]["field"] == "language"
    for path in ("/customers?cursor=%201-1", "/orders?cursor=1%20"):
        assert_problem(api.get(path), 422, "validation")


def test_free_text_is_checked_as_sent_then_stored_stripped(api):
    customer = CustomerFactory()
    pattern = _property(api, "LineIn", "product_name")["pattern"]
    body = {"customer_id": customer.pk}
    # Blank: schema-valid before (minLength 1, any character but controls), refused once
    # stripped. The schema now says a required text is not blank, and the server agrees.
    for blank in (" ", "\t", "\u3000"):
        assert not re.search(pattern, blank)
        line = {**LINE, "product_name": blank}
        response = api.post("/orders", {**body, "number": "TXT-1", "lines": [line]})
        assert_problem(response, 422, "validation")
    # One space over maxLength: forbidden by the schema, accepted once stripped.
    line = {**LINE, "product_name": "x" * 200 + " "}
    response = api.post("/orders", {**body, "number": "TXT-2", "lines": [line]})
    assert_problem(response, 422, "validation")
    # Within the schema: accepted, and stored stripped as before.
    for number, name in (("TXT-3", " Mug "), ("TXT-4", " " + "x" * 198 + " ")):
        assert re.search(pattern, name)
        line = {**LINE, "product_name": name}
        response = api.post("/orders", {**body, "number": number, "lines": [line]})
        assert response.status_code == 201, response.content
        assert response.json()["lines"][0]["product_name"] == name.strip()


@pytest.mark.parametrize("value", ["%2B1", "1_0", "1.0", "1%20", "%201"])
@pytest.mark.parametrize("name", ["limit", "customer_id"])
def test_an_integer_in_a_query_string_is_digits(api, name, value):
    # Pydantic read "+1", "1_0", "1.0" and " 1" as integers; the schema says integer.
    document = assert_problem(api.get(f"/orders?{name}={value}"), 422, "validation")
    assert document["errors"][0]["field"] == name
    assert api.get(f"/orders?{name}=01").status_code == 200


def test_the_schema_says_a_phone_has_no_control_characters(api):
    # A phone had only maxLength in the schema: "\x7f" was schema-valid, then refused.
    for schema_name in ("CustomerCreate", "CustomerUpdate", "AddressCreate", "AddressUpdate"):
        pattern = _property(api, schema_name, "phone")["pattern"]
        assert not re.search(pattern, "\x7f\u0097") and re.search(pattern, "+33 6 12 34 56 78")
    response = api.post("/customers", {"email": "ada@example.com", "phone": "\x7f\u0097"})
    document = assert_problem(response, 422, "validation")
    assert document["errors"][0]["field"] == "phone"


def test_an_integer_written_with_a_zero_fraction_is_that_integer(api):
    # JSON Schema's "integer" is any number with no fraction: 2.0 and 4184.0 are schema-valid
    # (schemathesis sends them), and were refused (422) as ids and quantities.
    customer = CustomerFactory()
    address = AddressFactory(customer=customer)
    lines = [{**LINE, "quantity": 2.0}]
    body = {"number": "INT-1", "customer_id": float(customer.pk), "lines": lines}
    response = api.post("/orders", body)
    assert response.status_code == 201, response.content
    assert response.json()["customer_id"] == customer.pk
    assert response.json()["lines"][0]["quantity"] == 2
    response = api.patch(
        f"/customers/{customer.pk}", {"default_billing_address_id": float(address.pk)}
    )
    assert response.status_code == 200, response.content
    assert response.json()["default_billing_address_id"] == address.pk
    # Still refused: a fraction, a string, a boolean.
    for quantity in (1.5, "2", True):
        line = {**LINE, "quantity": quantity}
        response = api.post("/orders", {**body, "number": "INT-2", "lines": [line]})
        document = assert_problem(response, 422, "validation")
        assert document["errors"][0]["field"] == "lines.0.quantity"


@pytest.mark.parametrize("time", ["T10:00Z", "T10:00:00+0100", "T10:00:00,5Z", "T10:00:00+01"])
def test_a_time_not_written_in_rfc_3339_is_refused(api, time):
    # The schema's format is date-time (RFC 3339); Pydantic also read a time without seconds,
    # an offset without its colon and a decimal comma.
    day = (timezone.now() - timedelta(days=1)).date().isoformat()
    body = {"platform": "web", "occurred_at": day + time}
    document = assert_problem(api.post("/launches", body), 422, "validation")
    assert document["errors"][0]["field"] == "occurred_at"
    query = quote(day + time)
    assert_problem(api.get(f"/customers?updated_since={query}"), 422, "validation")


@pytest.mark.parametrize("time", ["T10:00:00Z", "t10:00:00.5z", "T10:00:00.123456+01:00"])
def test_a_time_written_in_rfc_3339_is_accepted(api, time):
    day = (timezone.now() - timedelta(days=1)).date().isoformat()
    response = api.post("/launches", {"platform": "web", "occurred_at": day + time})
    assert response.status_code == 201, response.content
    assert api.get(f"/customers?updated_since={quote(day + time)}").status_code == 200


def test_the_schema_says_constraints_in_json_schema_keywords(api):
    # A validator placed before Field(ge=1) made Pydantic write "ge"/"le" into the schema:
    # customer_id 0 was schema-valid (no "minimum") and refused, 422.
    pydantic_names = {"ge", "le", "gt", "lt", "max_digits", "decimal_places"}

    def walk(node, parent=""):
        if isinstance(node, dict):
            if parent != "properties":
                assert not pydantic_names & set(node), node
            for key, value in node.items():
                walk(value, key)
        elif isinstance(node, list):
            for value in node:
                walk(value, parent)

    schema = api.client.get("/api/v1/openapi.json").json()
    walk(schema)
    ids = schema["components"]["schemas"]["OrderCreate"]["properties"]["customer_id"]["anyOf"]
    assert {"type": "integer", "minimum": 1, "maximum": 2**63 - 1} in ids


def _removed_once_read(monkeypatch):
    """The address call reads the address, then a concurrent call removes it and commits."""
    from storefront.endpoints import addresses

    read = addresses._address

    def read_then_removed(customer_id, address_id):
        address = read(customer_id, address_id)
        Address.objects.filter(pk=address.pk).delete()
        return address

    monkeypatch.setattr(addresses, "_address", read_then_removed)


def test_an_address_removed_while_a_call_corrects_it_is_a_404(api, monkeypatch):
    # schemathesis with two workers: a PATCH whose address a DELETE removed between the read
    # and the lock answered 500 (Address.DoesNotExist).
    customer = CustomerFactory()
    address = AddressFactory(customer=customer)
    _removed_once_read(monkeypatch)
    path = f"/customers/{customer.pk}/addresses/{address.pk}"
    assert_problem(api.patch(path, {"city": "Lyon"}), 404, "not-found")


def test_an_address_removed_twice_at_once_is_removed_once(api, monkeypatch):
    # The second removal answered 204 and wrote a second audit entry for the same address.
    customer = CustomerFactory()
    address = AddressFactory(customer=customer)
    entries = AuditEntry.objects.filter(customer=customer, action="address_delete")
    _removed_once_read(monkeypatch)
    assert_problem(api.delete(f"/customers/{customer.pk}/addresses/{address.pk}"), 404, "not-found")
    assert not entries.exists()
