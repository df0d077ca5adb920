"""The storefront's side of push: public JSON endpoints its pages and service worker call.

- GET  /push/storefront/key          → {"publicKey": "<VAPID public key>"}
- POST /push/storefront/subscribe    {"token": ..., "subscription": PushSubscription.toJSON()}
- POST /push/storefront/unsubscribe  {"token": ..., "endpoint": ...}
- POST /push/storefront/resubscribe  {"oldEndpoint", "oldAuth", "subscription"} (sent by the
  service worker on pushsubscriptionchange; the old auth secret proves it is the same browser)

Deprecated: the storefront API (/api/v1/push/…, storefront/endpoints/push.py) has the same
calls; these keep working and answer with `Deprecation: true` and a `Link` to their successor.

The token identifies the customer (notifications/tokens.py explains how the shop issues it).
Pages on the origins in PUSH_STOREFRONT_ORIGINS may call these endpoints (CORS). Anything
malformed, oversized or unsigned is answered 400/403 and stores nothing.
"""

import json

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt

from clients.models import Customer
from notifications import services
from notifications.endpoints import endpoint_problem
from notifications.tokens import storefront_token_read
from notifications.webpush import (
    b64url_decode,
    receiver_key_parse,
    vapid_configured,
    vapid_get,
)

MAX_BODY = 4096


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def _cors(request, response):
    origin = request.headers.get("Origin")
    if origin and origin in settings.PUSH_STOREFRONT_ORIGINS:
        response["Access-Control-Allow-Origin"] = origin
        response["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        response["Access-Control-Allow-Headers"] = "Content-Type"
        response["Access-Control-Max-Age"] = "3600"
        response["Vary"] = "Origin"
    return response


def _json_body(request) -> dict:
    if request.content_type != "application/json":
        raise BadRequest("Send JSON (Content-Type: application/json).")
    length = request.headers.get("Content-Length", "")
    if not length.isdigit() or int(length) > MAX_BODY:
        raise BadRequest(f"The request must have a body of at most {MAX_BODY} bytes.")
    try:
        data = json.loads(request.read(MAX_BODY + 1), parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError, RecursionError):
        # RecursionError: nesting deeper than the interpreter's recursion limit ([[[[...).
        raise BadRequest("The body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise BadRequest("The body must be a JSON object.")
    return data


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")  # json.loads accepts NaN and Infinity by default


def _customer(data: dict) -> Customer:
    customer_id = storefront_token_read(data.get("token"))
    if customer_id is None:
        raise BadRequest("The customer token is missing, invalid or expired.", status=403)
    customer = Customer.objects.filter(pk=customer_id, erased_at=None).first()
    if customer is None:
        raise BadRequest("The customer token is missing, invalid or expired.", status=403)
    return customer


def _string(value, name: str, max_length: int) -> str:
    if not isinstance(value, str) or not value or len(value) > max_length:
        raise BadRequest(f"{name} must be a string of 1 to {max_length} characters.")
    if "\x00" in value or not _encodable(value):
        # A NUL or a lone surrogate ("\ud800" in JSON) cannot be stored, nor even looked up.
        raise BadRequest(f"{name} contains characters no text may contain.")
    return value


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _subscription(value) -> dict:
    """Validate PushSubscription.toJSON(): an allowed endpoint and real keys."""
    if not isinstance(value, dict):
        raise BadRequest("subscription must be PushSubscription.toJSON().")
    endpoint = value.get("endpoint")
    problem = endpoint_problem(endpoint)
    if problem:
        raise BadRequest(f"subscription.endpoint: {problem}")
    keys = value.get("keys")
    if not isinstance(keys, dict):
        raise BadRequest("subscription.keys is missing.")
    p256dh = _string(keys.get("p256dh"), "subscription.keys.p256dh", 100)
    auth = _string(keys.get("auth"), "subscription.keys.auth", 50)
    try:
        receiver_key_parse(p256dh)
        if len(b64url_decode(auth)) != 16:
            raise ValueError
    except ValueError:
        raise BadRequest("subscription.keys are not a P-256 key and a 16-byte secret.") from None
    return {"endpoint": endpoint, "p256dh": p256dh.rstrip("="), "auth": auth.rstrip("=")}


# These endpoints are deprecated in favour of the storefront API's (storefront/endpoints/
# push.py): they keep working, and say so in every response (RFC 9745 `Deprecation`, and a
# `Link` to the successor, RFC 8594).
SUCCESSORS = {
    "public_key": "/api/v1/push/key",
    "subscribe": "/api/v1/push/subscriptions",
    "unsubscribe": "/api/v1/push/subscriptions/remove",
    "resubscribe": "/api/v1/push/subscriptions/replace",
}


def _api(handler):
    """Public, CSRF-exempt (no cookies are used), CORS-aware JSON endpoint (deprecated)."""

    @login_not_required
    @csrf_exempt
    @never_cache
    def view(request):
        if request.method == "OPTIONS":
            return _cors(request, HttpResponse(status=204))
        try:
            response = handler(request)
        except BadRequest as exc:
            response = JsonResponse({"error": str(exc)}, status=exc.status)
        response["Deprecation"] = "true"
        response["Link"] = f'<{SUCCESSORS[handler.__name__]}>; rel="successor-version"'
        return _cors(request, response)

    view.__name__ = handler.__name__
    return view


@_api
def public_key(request):
    if request.method != "GET":
        raise BadRequest("Use GET.", status=405)
    if not vapid_configured():
        raise BadRequest("Web push is not configured on this back office (no VAPID key).", 503)
    return JsonResponse({"publicKey": vapid_get().public_key})


@_api
def subscribe(request):
    if request.method != "POST":
        raise BadRequest("Use POST.", status=405)
    data = _json_body(request)
    customer = _customer(data)
    subscription = _subscription(data.get("subscription"))
    user_agent = request.headers.get("User-Agent", "")
    services.subscription_save(customer=customer, user_agent=user_agent, **subscription)
    return JsonResponse({"subscribed": True}, status=201)


@_api
def unsubscribe(request):
    if request.method != "POST":
        raise BadRequest("Use POST.", status=405)
    data = _json_body(request)
    customer = _customer(data)
    endpoint = _string(data.get("endpoint"), "endpoint", 1024)
    removed = services.subscription_remove(endpoint=endpoint, customer=customer)
    return JsonResponse({"unsubscribed": removed})


@_api
def resubscribe(request):
    if request.method != "POST":
        raise BadRequest("Use POST.", status=405)
    data = _json_body(request)
    old_endpoint = _string(data.get("oldEndpoint"), "oldEndpoint", 1024)
    old_auth = _string(data.get("oldAuth"), "oldAuth", 50).rstrip("=")
    subscription = _subscription(data.get("subscription"))
    saved = services.subscription_replace(
        old_endpoint=old_endpoint, old_auth=old_auth, **subscription
    )
    if saved is None:
        raise BadRequest("Unknown subscription.", status=403)
    return JsonResponse({"subscribed": True}, status=201)
