"""RFC 9457 problem details: every 4xx/5xx under /api/ is one of these documents.

    {"type": "/api/v1/problems/validation", "title": "Invalid request", "status": 422,
     "detail": "2 fields are invalid.", "errors": [{"field": "email", "message": "..."}]}

`type` is stable: clients branch on it, never on `title` or `detail` (for people). Each type
is described at its own URL (storefront/views.py serves them). Raise `Problem` anywhere
inside an endpoint or a service called by one: the call's transaction is rolled back and the
document is the response.
"""

import json
from dataclasses import dataclass, field

from django.http import HttpResponse

CONTENT_TYPE = "application/problem+json"
TYPE_ROOT = "/api/v1/problems/"


@dataclass(frozen=True)
class ProblemType:
    slug: str
    status: int
    title: str
    description: str

    @property
    def uri(self) -> str:
        return TYPE_ROOT + self.slug


_TYPES = [
    ProblemType(
        "validation",
        422,
        "Invalid request",
        "One or more fields are missing, malformed or unknown; `errors` lists every "
        "one, with `field` (a dotted path into the body or the query) and `message`.",
    ),
    ProblemType(
        "malformed-json", 400, "Malformed JSON", "The body is not a JSON document (or not UTF-8)."
    ),
    ProblemType(
        "bad-request",
        400,
        "Bad request",
        "A header or parameter is malformed; `detail` says which.",
    ),
    ProblemType(
        "unauthenticated",
        401,
        "Authentication required",
        "No API key (or customer token), or one that is unknown, revoked or expired. "
        "Send `Authorization: Bearer <API key>`.",
    ),
    ProblemType(
        "forbidden",
        403,
        "Not allowed",
        "The key is valid but lacks the scope this call needs (`scope`), or the "
        "customer token is for another customer.",
    ),
    ProblemType("not-found", 404, "Not found", "No such resource or path."),
    ProblemType(
        "method-not-allowed",
        405,
        "Method not allowed",
        "The path exists but not with this method; `Allow` lists the methods.",
    ),
    ProblemType(
        "conflict",
        409,
        "Conflict",
        "The request contradicts the stored state (for example an email already "
        "used by another customer); nothing was changed.",
    ),
    ProblemType(
        "invalid-transition",
        409,
        "Invalid order status change",
        "The order's current status does not allow this change (paying a cancelled order, "
        "fulfilling an unpaid one, refunding an unpaid one...); nothing was changed. "
        "`detail` says which status the order has.",
    ),
    ProblemType(
        "refund-exceeds-paid",
        409,
        "Refund too large",
        "The refund is more than what is left to refund on the order (its total less the "
        "refunds already made); nothing was changed.",
    ),
    ProblemType(
        "order-number-taken",
        409,
        "Order number already used",
        "Another order already has this number (order numbers are unique); nothing was "
        "changed. Retrying a creation? Send the same Idempotency-Key to get its response.",
    ),
    ProblemType(
        "idempotency-key-in-use",
        409,
        "Idempotency key in use",
        "Another request with the same `Idempotency-Key` is still running; retry "
        "after it finishes to get its response.",
    ),
    ProblemType(
        "idempotency-key-reused",
        422,
        "Idempotency key reused",
        "The `Idempotency-Key` was already used with a different request (method, "
        "path or body) in the last 24 hours; use a new key for a new request.",
    ),
    ProblemType(
        "length-required",
        411,
        "Length required",
        "The body was sent without a `Content-Length` header (`Transfer-Encoding: chunked`); "
        "send it with its length.",
    ),
    ProblemType(
        "payload-too-large",
        413,
        "Body too large",
        "The body is larger than this endpoint accepts (`max_bytes`).",
    ),
    ProblemType(
        "unsupported-media-type",
        415,
        "Unsupported media type",
        "Send the body as `application/json` (or the type the endpoint lists).",
    ),
    ProblemType(
        "rate-limited",
        429,
        "Too many requests",
        "The key made more calls than its limit allows in the current window; "
        "retry after `Retry-After` seconds.",
    ),
    ProblemType(
        "server-error",
        500,
        "Server error",
        "Something failed on the back office's side; nothing was changed. Retrying "
        "with the same `Idempotency-Key` is safe.",
    ),
    ProblemType("unavailable", 503, "Unavailable", "A feature this call needs is not set up."),
]
TYPES = {t.slug: t for t in _TYPES}


@dataclass
class Problem(Exception):
    """An error answered as a problem document (raise it; the API turns it into a response)."""

    slug: str
    detail: str = ""
    errors: list[dict] = field(default_factory=list)
    extra: dict = field(default_factory=dict)
    headers: dict = field(default_factory=dict)
    status: int | None = None

    def __post_init__(self):
        super().__init__(self.detail or self.slug)


def field_error(field_name: str, message: str, slug: str = "validation") -> Problem:
    """A validation problem about one field (the same shape as the schema's own errors)."""
    return Problem(slug, message, errors=[{"field": field_name, "message": message}])


def problem_response(problem: Problem) -> HttpResponse:
    kind = TYPES[problem.slug]
    status = problem.status or kind.status
    document = {"type": kind.uri, "title": kind.title, "status": status}
    if problem.detail:
        document["detail"] = problem.detail
    if problem.errors:
        document["errors"] = problem.errors
    document.update(problem.extra)
    response = HttpResponse(
        json.dumps(document, ensure_ascii=False), status=status, content_type=CONTENT_TYPE
    )
    for name, value in problem.headers.items():
        response[name] = value
    if status == 401 and "WWW-Authenticate" not in response:
        # RFC 9110: a 401 names the scheme to authenticate with (the schema says so too).
        response["WWW-Authenticate"] = "Bearer"
    return response


def problem(slug: str, detail: str = "", **kwargs) -> HttpResponse:
    return problem_response(Problem(slug, detail, **kwargs))


def is_problem(response) -> bool:
    return response.get("Content-Type", "").startswith(CONTENT_TYPE)
