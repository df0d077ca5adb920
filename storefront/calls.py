"""What every API call goes through, in this order (wrapped around each ninja operation):

1. the body's size and type, from its headers, before anything reads it (413, 415);
2. who is calling: the operation's `auth=[...]` (storefront/auth.py), and the scope (401, 403);
3. the caller's rate limit (storefront/ratelimit.py, 429 with Retry-After), then unknown
   query parameters (422);
4. the operation itself (ninja validates the body, then the endpoint calls services) inside
   ONE transaction: a response of 400 or more rolls it back, so a call that fails changed
   nothing. On POST with an `Idempotency-Key` (storefront/idempotency.py), the same
   transaction first looks the key up (a replay, or 422 for another request) and, on
   success, stores the response with the work.

Per-operation options (the bulk import streams NDJSON, for instance) are set with
`@call_options(...)` under the ninja decorator.
"""

import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction

from storefront.auth import caller_identify
from storefront.idempotency import (
    idempotency_lookup,
    idempotency_record,
    idempotency_replay_after_race,
    key_from,
    request_fingerprint,
)
from storefront.problems import Problem, problem_response
from storefront.ratelimit import rate_limit_hit

logger = logging.getLogger(__name__)

JSON = "application/json"
_BODY_METHODS = {"POST", "PUT", "PATCH"}
# What a call loses to a concurrent call with its Idempotency-Key: the same unique value
# taken (409), or the state the first one changed (409, 422).
_MAYBE_RACED = {409, 422}


@dataclass(frozen=True)
class CallOptions:
    # None: STOREFRONT_API_MAX_BODY (settings), 64 KiB by default.
    max_body: int | None = None
    content_types: tuple[str, ...] = (JSON,)
    # False for an operation that manages its own transactions (a streaming import):
    # it must then keep "nothing half-written" per unit itself, and its Idempotency-Key
    # (storefront/idempotency.py, idempotency_claim).
    atomic: bool = True


_DEFAULT = CallOptions()


def call_options(**options):
    """Set an operation's CallOptions: `@call_options(max_body=10_000_000)` under the route."""

    def decorate(view_func):
        view_func.call_options = CallOptions(**options)
        return view_func

    return decorate


def _check_body(request, options: CallOptions) -> None:
    if request.method not in _BODY_METHODS:
        return
    length = request.META.get("CONTENT_LENGTH") or "0"
    if "HTTP_TRANSFER_ENCODING" in request.META and length == "0":
        # Django reads a body only as long as Content-Length says: a chunked body would be
        # read as empty (the import answered 200 having applied nothing).
        raise Problem("length-required", "Send the body with a Content-Length header, not chunked.")
    encoding = request.META.get("HTTP_CONTENT_ENCODING", "identity").strip().lower()
    if encoding not in ("", "identity"):
        # Nothing here decompresses a body: a gzipped one was parsed as it came.
        raise Problem(
            "unsupported-media-type",
            f"Content-Encoding {encoding[:40]!r} is not accepted: send the body uncompressed.",
            extra={"accepted": list(options.content_types)},
        )
    if not length.isdigit():
        raise Problem("bad-request", "Content-Length is not a number.")
    max_body = options.max_body or settings.STOREFRONT_API_MAX_BODY
    if int(length) > max_body:
        raise Problem(
            "payload-too-large",
            f"The body is {int(length)} bytes; this endpoint accepts at most {max_body}.",
            extra={"max_bytes": max_body},
        )
    if int(length) and request.content_type not in options.content_types:
        raise Problem(
            "unsupported-media-type",
            f"Send the body as {' or '.join(options.content_types)}.",
            extra={"accepted": list(options.content_types)},
        )


def _check_query(request, operation) -> None:
    """Unknown query parameters are refused, like unknown body fields."""
    if not request.GET:
        return
    allowed = set()
    for model in operation.models:
        if model.__ninja_param_source__ == "query":
            allowed.update(model.__ninja_flatten_map__)
    unknown = sorted(set(request.GET) - allowed)
    if unknown:
        raise Problem(
            "validation",
            f"{len(unknown)} unknown query parameter(s).",
            errors=[{"field": n, "message": "is not a parameter of this call"} for n in unknown],
        )


def api_call(run):
    """Wrap one ninja operation's `run` with the steps above (see the module docstring)."""
    operation = run.__self__

    def call(request, *args, **kwargs):
        options = getattr(operation.view_func, "call_options", _DEFAULT)
        try:
            _check_body(request, options)
            if operation.auth_callbacks:
                request.auth = caller_identify(request, operation.auth_callbacks)
                rate_limit_hit(request.auth)
            _check_query(request, operation)
            if not options.atomic:
                return run(request, *args, **kwargs)
            # Idempotency keys belong to a caller; the one operation without authentication
            # (the service worker's subscription replace) is idempotent by itself.
            key = None
            if request.method == "POST" and operation.auth_callbacks:
                key = key_from(request)
            if key is None:
                with transaction.atomic():
                    response = run(request, *args, **kwargs)
                    if response.status_code >= 400:
                        transaction.set_rollback(True)
                return response
            return _idempotent(request, run, key, args, kwargs)
        except Problem as problem:
            return problem_response(problem)

    return call


def _idempotent(request, run, key: str, args, kwargs):
    """Run a POST sent with an Idempotency-Key (storefront/idempotency.py)."""
    fingerprint = request_fingerprint(request, request.body)
    found = {"caller": request.auth, "key": key, "fingerprint": fingerprint}
    with transaction.atomic():
        replay = idempotency_lookup(**found)
        if replay is not None:
            return replay
        response = run(request, *args, **kwargs)
        if response.status_code >= 400:
            transaction.set_rollback(True)
        elif not idempotency_record(**found, response=response):
            transaction.set_rollback(True)
            response = None  # a concurrent call with this key committed first
    if response is None:
        return idempotency_replay_after_race(**found)
    if response.status_code in _MAYBE_RACED:
        # A concurrent first use of the key may have made this call fail (the same order
        # number, the same email): answer as it did, if so.
        return idempotency_lookup(**found) or response
    return response
