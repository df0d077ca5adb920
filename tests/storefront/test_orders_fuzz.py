"""Property: no sequence of order calls, however malformed, answers 500 or breaks statistics.

Hypothesis draws sequences of calls to the order endpoints and the import, mixing valid
bodies with hostile values (wrong types, huge and negative numbers, NaN, control
characters, unknown fields, other orders' numbers). Every answer must be a success or a
problem document (never a 5xx), and `rebuild_customer_stats --check` must find no drift.
HYPOTHESIS_PROFILE=long runs many more examples.
"""

import json
import os
from io import StringIO

import pytest
from django.core.management import call_command
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.factories import CustomerFactory
from tests.storefront.conftest import Api, make_key

pytestmark = pytest.mark.django_db

EXAMPLES = {"ci": 20, "long": 300}[os.environ.get("HYPOTHESIS_PROFILE", "ci")]

NUMBERS = ["F-1", "F-2", "F-3"]
hostile_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["", "0", "-0.01", "1e400", "1.005", "9999999999.99", "NaN", "abc"]),
    st.text(max_size=40),
    st.sampled_from(["\x00", "é" * 300, "<script>", "' OR 1=1 --"]),
)
amount = st.one_of(st.sampled_from(["0.00", "1.00", "19.90", "100", 5, 12.5]), hostile_scalar)
line = st.fixed_dictionaries(
    {
        "product_name": st.one_of(st.just("Mug"), hostile_scalar),
        "quantity": st.one_of(st.integers(-2, 5), hostile_scalar),
        "unit_price": amount,
    },
    optional={"sku": hostile_scalar, "extra": hostile_scalar},
)


def order_body(customer_ids):
    return st.fixed_dictionaries(
        {
            "number": st.one_of(st.sampled_from(NUMBERS), hostile_scalar),
            "customer_id": st.one_of(st.sampled_from(customer_ids), hostile_scalar),
            "lines": st.one_of(st.lists(line, max_size=3), hostile_scalar),
        },
        optional={
            "shipping": amount,
            "discount": amount,
            "total": amount,
            "currency": st.one_of(st.just("EUR"), hostile_scalar),
            "placed_at": st.one_of(
                st.sampled_from(["2026-01-01T00:00:00Z", "2026-01-01", "2999-01-01T00:00:00Z"]),
                hostile_scalar,
            ),
            "source": hostile_scalar,
            "status": hostile_scalar,
        },
    )


def calls(customer_ids):
    number = st.one_of(st.sampled_from(NUMBERS), st.sampled_from(["%00", "..", "x" * 40]))
    return st.lists(
        st.one_of(
            st.tuples(st.just("create"), order_body(customer_ids)),
            st.tuples(st.sampled_from(["pay", "fulfil", "cancel"]), number),
            st.tuples(
                st.just("refund"),
                st.tuples(
                    number,
                    st.one_of(
                        amount, st.dictionaries(st.text(max_size=5), hostile_scalar, max_size=2)
                    ),
                ),
            ),
            st.tuples(
                st.just("import"),
                st.lists(st.one_of(order_body(customer_ids), hostile_scalar), max_size=4),
            ),
            st.tuples(st.just("raw"), st.binary(max_size=60)),
        ),
        min_size=1,
        max_size=12,
    )


@pytest.fixture
def world(db):
    return Api(make_key()), [CustomerFactory().pk, CustomerFactory().pk]


def _send(api, action, arg):
    if action == "create":
        return [api.post("/orders", arg)]
    if action in ("pay", "fulfil", "cancel"):
        return [api.post(f"/orders/{arg}/{action}", raw=b"")]
    if action == "refund":
        number, body = arg
        return [
            api.post(
                f"/orders/{number}/refunds", body if isinstance(body, dict) else {"amount": body}
            )
        ]
    if action == "import":
        body = "".join(json.dumps(x) + "\n" for x in arg).encode()
        return [api.post("/import", raw=body, content_type="application/x-ndjson")]
    return [
        api.post("/orders", raw=arg),
        api.post("/import", raw=arg, content_type="application/x-ndjson"),
    ]


def test_no_call_sequence_answers_500_or_breaks_the_statistics(world):
    api, customer_ids = world

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(calls(customer_ids))
    def run(sequence):
        for action, arg in sequence:
            for response in _send(api, action, arg):
                assert response.status_code < 500, (action, arg, response.content)
                if response.status_code >= 400:
                    assert response["Content-Type"].startswith("application/problem+json")
                elif action in ("import", "raw") and response.status_code == 200:
                    body = b"".join(response.streaming_content)
                    assert b"server-error" not in body, (arg, body)
        out = StringIO()
        call_command("rebuild_customer_stats", "--check", stdout=out, stderr=StringIO())
        assert ", 0 had drifted" in out.getvalue()

    run()
