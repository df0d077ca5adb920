"""The storefront API (/api/v1/): the NinjaAPI object, its error handling, its routers.

Adding an endpoint:
1. In storefront/endpoints/<resource>.py, on that module's `router`:
       @router.post("/things", response={201: ThingOut}, auth=[ApiKeyAuth(Scope.X)],
                    url_name="thing-create")
       def thing_create(request, payload: ThingIn): ...
   with `ThingIn(In)` (storefront/schemas.py: unknown fields refused) and `ThingOut(Out)`.
   The endpoint validates, calls a service (the only writer) and returns the result:
   return `Status(201, thing)` for a creation, raise `Problem(...)` for an error.
2. Register a new module's router below with `api.add_router(...)`.
3. Everything else is shared and already applies (storefront/calls.py): body size and type,
   the key and its scope, the rate limit, `Idempotency-Key` on POST, one transaction per
   call, problem+json for every error. Add the route's expectations to
   tests/test_permissions.py and its tests in tests/storefront/.
"""

import copy
import logging
from datetime import datetime

from django.http import Http404
from django.urls import reverse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, Throttled, ValidationError
from ninja.renderers import JSONRenderer
from ninja.responses import NinjaJSONEncoder

from storefront.calls import api_call
from storefront.endpoints import addresses, customers, imports, launches, orders, push
from storefront.parsing import StrictJsonParser
from storefront.problems import TYPES, Problem, problem_response

logger = logging.getLogger("storefront.api")

DESCRIPTION = """
The shop's storefront (its app, website or e-commerce platform) reports accounts, addresses,
launches and orders to the back office through this API.

**Authentication.** `Authorization: Bearer <API key>`; Admins create keys in the back office
(Settings > API keys), each with scopes: `read`, `customers:write`, `orders:write`,
`push:write`. Calls made by a customer's own browser (push subscriptions, launches from the
website) send the signed customer token instead, as `X-Customer-Token`.

**Errors** are RFC 9457 problem documents (`application/problem+json`) with a stable `type`
(a URL under `/api/v1/problems/` describing it), a `title`, the `status`, a human `detail`,
and for invalid requests `errors`: every invalid field at once, as `field` and `message`.
Unknown fields are refused.

**Idempotency.** Send `Idempotency-Key: <unique string>` with every POST. A retry with the
same key and the same body returns the first response (with `Idempotent-Replayed: true`)
without doing the work again; the same key with another body gets 422; while the first is
still running, 409 (the bulk import: with Retry-After; the other calls wait for the first and
answer as it did). Keys are kept 24 hours. A call that failed changed nothing and does not
use up its key; an import that stopped midway (the answer ends on an error line, or the
connection dropped) frees its key too, and its retry answers `unchanged` what it had applied.

**Transactions.** Each call is one transaction: it is applied whole or not at all.

**Limits.** Bodies up to 64 KiB (413 above); calls per key per window (429 with
`Retry-After`).
"""


class _Encoder(NinjaJSONEncoder):
    """Times to the microsecond, as stored (Django's encoder cuts them to milliseconds, so a
    time read from the API was not the order's own: an import line copying it was refused as
    another order with the same number)."""

    def default(self, o):
        if isinstance(o, datetime):
            text = o.isoformat()
            return text[:-6] + "Z" if text.endswith("+00:00") else text
        return super().default(o)


class _Renderer(JSONRenderer):
    encoder_class = _Encoder


api = NinjaAPI(
    title="Back office storefront API",
    version="1",
    description=DESCRIPTION,
    urls_namespace="api",
    # storefront/views.py serves the schema (GET only) and the documentation page (vendored
    # Swagger UI).
    openapi_url=None,
    docs_url=None,
    parser=StrictJsonParser(),
    renderer=_Renderer(),
)
# "view" mode wraps each operation's whole run (before authentication and body parsing).
api.add_decorator(api_call, mode="view")


def _field(loc) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] == "body":
        parts = parts[2:] if len(parts) > 2 else parts[1:]
    elif parts and parts[0] in ("query", "path", "header"):
        parts = parts[1:]
    return ".".join(parts) or "body"


@api.exception_handler(ValidationError)
def _validation(request, exc: ValidationError):
    errors = []
    for error in exc.errors:
        message = error.get("msg", "is invalid")
        if error.get("type") == "extra_forbidden":
            message = "is not a field of this request"
        elif error.get("type") == "missing":
            message = "is required"
        errors.append({"field": _field(error.get("loc", ())), "message": message})
    count = len(errors)
    detail = "1 field is invalid." if count == 1 else f"{count} fields are invalid."
    return problem_response(Problem("validation", detail, errors=errors))


@api.exception_handler(Problem)
def _problem(request, exc: Problem):
    return problem_response(exc)


@api.exception_handler(HttpError)
def _http_error(request, exc: HttpError):
    if isinstance(exc.__cause__, Problem):
        return problem_response(exc.__cause__)
    if exc.status_code == 400:
        return problem_response(Problem("malformed-json", "The body is not valid JSON."))
    slug = next((t.slug for t in TYPES.values() if t.status == exc.status_code), "bad-request")
    return problem_response(Problem(slug, str(exc.message), status=exc.status_code))


@api.exception_handler(Http404)
def _not_found(request, exc):
    return problem_response(Problem("not-found", "No such resource."))


@api.exception_handler(AuthenticationError)
def _unauthenticated(request, exc):
    return problem_response(Problem("unauthenticated", "Authentication required."))


@api.exception_handler(Throttled)
def _throttled(request, exc):
    return problem_response(Problem("rate-limited", "Too many requests."))


@api.exception_handler(Exception)
def _server_error(request, exc):
    logger.exception("API call failed: %s %s", request.method, request.path)
    return problem_response(Problem("server-error", "The call failed; nothing was changed."))


api.add_router("/customers", customers.router, tags=["Customers"])
api.add_router("/customers", addresses.router, tags=["Addresses"])
api.add_router("", launches.router, tags=["Launches"])
api.add_router("/push", push.router, tags=["Push subscriptions"])
api.add_router("/orders", orders.router, tags=["Orders"])
api.add_router("/import", imports.router, tags=["Bulk import"])


PROBLEM_SCHEMA = {
    "type": "object",
    "description": "An RFC 9457 problem document: every error of this API is one.",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string", "description": "Stable; /api/v1/problems/<name>."},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "description": "Every invalid field at once (validation problems).",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}
IDEMPOTENCY_PARAMETER = {
    "in": "header",
    "name": "Idempotency-Key",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x20-\\x7e]+$"},
    "description": "A unique string per request: a retry with the same key and body returns "
    "the first response without doing the work again (kept 24 hours).",
}


def _problem_response(description: str, **headers: dict) -> dict:
    response = {
        "description": description,
        "content": {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        },
    }
    if headers:
        response["headers"] = headers
    return response


# The errors the pipeline (storefront/calls.py, storefront/middleware.py) can answer, each a
# problem document; an operation lists those that can happen to it (_errors).
ERROR_RESPONSES = {
    "400": _problem_response(
        "Malformed JSON, or a malformed header (`Idempotency-Key`, `Content-Length`, `Host`)."
    ),
    "401": _problem_response(
        "No API key or customer token, or one that is unknown, revoked or expired.",
        **{
            "WWW-Authenticate": {
                "required": True,
                "schema": {"type": "string"},
                "description": "`Bearer`: the scheme of the API keys.",
            }
        },
    ),
    "403": _problem_response("The key lacks the scope, or the token is another customer's."),
    "404": _problem_response("No such resource."),
    "409": _problem_response(
        "A conflict with the stored state (nothing was changed), or an `Idempotency-Key` used "
        "by a request still running or by another request."
    ),
    "411": _problem_response(
        "The body was sent without `Content-Length` (chunked): send its length."
    ),
    "413": _problem_response("The body is larger than this call accepts."),
    "415": _problem_response("The body is not of a media type this call accepts."),
    "422": _problem_response("Invalid or unknown fields or query parameters: `errors` lists them."),
    "429": _problem_response(
        "Too many calls in the current window for this key or customer token.",
        **{
            "Retry-After": {
                "required": True,
                "schema": {"type": "integer", "minimum": 1},
                "description": "Seconds until the next window.",
            }
        },
    ),
    "503": _problem_response("A feature this call needs is not set up."),
}
# Errors the endpoints raise themselves, beyond what their shape says (_errors).
_RAISED = {
    ("get", "/push/key"): {"503"},
    ("post", "/push/subscriptions/replace"): {"403"},
    ("patch", "/customers/{customer_id}"): {"409"},
    ("patch", "/customers/{customer_id}/addresses/{address_id}"): {"409"},
}


def _errors(method: str, path: str, operation: dict) -> set[str]:
    """The error statuses an operation can answer: 400 and 422 always (the Host header,
    unknown query parameters), the rest by what it takes."""
    statuses = {"400", "422"} | _RAISED.get((method, path), set())
    if method in ("post", "put", "patch"):
        statuses |= {"411", "413", "415"}
    if operation.get("security"):
        statuses |= {"401", "403", "429"}
        if method == "post":
            statuses.add("409")  # the endpoints' own conflicts (taken numbers, transitions…)
    if any(p["in"] == "path" for p in operation.get("parameters", [])):
        statuses.add("404")
    return statuses


def openapi_schema() -> dict:
    """The OpenAPI 3.1 document generated by django-ninja, with what every operation shares
    added: the problem+json error responses each can answer (any other status, a 500 say, is
    `default`) and, on POST, the Idempotency-Key header."""
    schema = copy.deepcopy(api.get_openapi_schema(path_prefix=reverse("api:api-root")))
    schema["components"]["schemas"]["Problem"] = PROBLEM_SCHEMA
    schema["components"]["responses"] = {
        status: ERROR_RESPONSES[status] for status in sorted(ERROR_RESPONSES)
    }
    root = reverse("api:api-root").rstrip("/")
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            for status in sorted(_errors(method, path.removeprefix(root), operation)):
                # ninja's keys are ints (201): the same, so that none is there twice.
                responses.setdefault(int(status), {"$ref": f"#/components/responses/{status}"})
            responses.setdefault("default", _problem_response("An error (RFC 9457)."))
            if method == "post" and operation.get("security"):
                operation.setdefault("parameters", []).append(IDEMPOTENCY_PARAMETER)
    return schema
