"""Who is calling the API: the shop's platform with an API key, or a customer's browser with
the signed customer token.

- API key: `Authorization: Bearer bo_<8 characters>_<secret>`. The row is found by its
  prefix, then the SHA-256 digest of the whole key is compared in constant time
  (`hmac.compare_digest`); an unknown prefix is compared against a dummy digest, so the time
  does not tell whether a prefix exists. Each operation names the scope it needs. Each
  process keeps the rows it read for STOREFRONT_API_KEY_CACHE_SECONDS (5): the bound on how
  long a revoked key still works in the other workers.
- Customer token: `X-Customer-Token: <token>` (notifications/tokens.py: "<customer id>.<unix
  time>.<HMAC>", short-lived), for the calls a customer's browser makes itself (push
  subscriptions, launches from the website). It only ever acts on its own customer.

The classes below are what an endpoint lists in `auth=[...]`: they also describe the
security schemes in the OpenAPI document. The actual check runs once, early, in
storefront/calls.py (before the body is read), which stores the `Caller` on `request.auth`.
"""

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from ninja.security.base import AuthBase

from notifications.tokens import storefront_token_read
from storefront.models import ApiKey, Scope
from storefront.problems import Problem

KEY_PREFIX = "bo_"
_PREFIX_LENGTH = len(KEY_PREFIX) + 8
_DUMMY_DIGEST = hashlib.sha256(b"no such key").hexdigest()
# last_used_at is written at most this often per key (one UPDATE a minute, not one per call).
LAST_USED_RESOLUTION = timedelta(minutes=1)


def key_generate() -> tuple[str, str, str]:
    """A new key: (the key, shown once; its prefix, stored and shown; its digest, stored)."""
    alphabet = "abcdefghijkmnpqrstuvwxyz23456789"
    prefix = KEY_PREFIX + "".join(secrets.choice(alphabet) for _ in range(8))
    key = f"{prefix}_{secrets.token_urlsafe(32)}"
    return key, prefix, key_digest(key)


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class Caller:
    """The authenticated caller of one API call."""

    principal: str  # "key:<id>" or "customer:<id>": idempotency and rate limits are per caller
    api_key: ApiKey | None = None
    customer_id: int | None = None

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset(self.api_key.scopes) if self.api_key else frozenset()

    @property
    def is_customer(self) -> bool:
        return self.customer_id is not None


# Active keys read from the database, by prefix, kept by each process for
# STOREFRONT_API_KEY_CACHE_SECONDS: {prefix: (read at (monotonic), ApiKey or None)}. A call
# then costs no query for its key; a revocation takes effect at once in the process that
# revoked it and within that many seconds in every other worker and machine.
_keys: dict[str, tuple[float, ApiKey | None]] = {}
_KEYS_MAX = 1000


def _key_by_prefix(prefix: str) -> ApiKey | None:
    ttl = settings.STOREFRONT_API_KEY_CACHE_SECONDS
    now = time.monotonic()
    cached = _keys.get(prefix)
    if cached is not None and now - cached[0] < ttl:
        return cached[1]
    key = ApiKey.objects.filter(prefix=prefix, revoked_at__isnull=True).first()
    if ttl > 0 and (key is not None or len(_keys) < _KEYS_MAX):
        if len(_keys) >= _KEYS_MAX:
            _keys.clear()
        _keys[prefix] = (now, key)
    return key


def api_key_forget(prefix: str) -> None:
    """Drop a key from this process's cache (it was revoked here)."""
    _keys.pop(prefix, None)


def api_key_read(token: str) -> ApiKey | None:
    """The active key `token` is, or None; compared in constant time."""
    if not token.isascii() or len(token) > 200:
        return None
    prefix = token[:_PREFIX_LENGTH]
    key = _key_by_prefix(prefix)
    matches = hmac.compare_digest(key_digest(token), key.digest if key else _DUMMY_DIGEST)
    if key is None or not matches:
        return None
    now = timezone.now()
    if key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION:
        # The cached copy remembers it, so this worker writes it once a minute per key.
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
        key.last_used_at = now
    return key


class ApiKeyAuth(AuthBase):
    """`Authorization: Bearer <API key>` with the scope `scope`."""

    openapi_type = "http"
    openapi_scheme = "bearer"
    openapi_description = "An API key created by an Admin in the back office (Settings > API keys)."

    def __init__(self, scope: str):
        assert scope in Scope.values, scope
        self.scope = scope
        super().__init__()

    def identify(self, request) -> Caller | None:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.startswith(KEY_PREFIX):
            return None
        key = api_key_read(token.strip())
        if key is None:
            raise Problem("unauthenticated", "This API key is unknown or was revoked.")
        if self.scope not in key.scopes:
            raise Problem(
                "forbidden",
                f"This API key lacks the scope {self.scope}.",
                extra={"scope": self.scope},
            )
        return Caller(principal=f"key:{key.pk}", api_key=key)

    def __call__(self, request):
        # storefront/calls.py identified the caller before the body was read.
        return getattr(request, "auth", None)


class CustomerTokenAuth(AuthBase):
    """`X-Customer-Token: <signed customer token>`, from the customer's own browser."""

    openapi_type = "apiKey"
    openapi_in = "header"
    openapi_name = "X-Customer-Token"
    openapi_description = (
        "The short-lived signed token the shop gives a logged-in customer's browser "
        "(`<customer id>.<unix time>.<HMAC-SHA256>`); acts on that customer only."
    )

    def identify(self, request) -> Caller | None:
        token = request.headers.get("X-Customer-Token")
        if token is None:
            return None
        customer_id = storefront_token_read(token)
        if customer_id is None:
            raise Problem("unauthenticated", "The customer token is invalid or expired.")
        return Caller(principal=f"customer:{customer_id}", customer_id=customer_id)

    def __call__(self, request):
        return getattr(request, "auth", None)


def caller_identify(request, auths) -> Caller:
    """The caller, by the first of `auths` whose credentials the request carries."""
    for auth in auths:
        caller = auth.identify(request)
        if caller is not None:
            return caller
    names = " or ".join(
        "an API key" if isinstance(a, ApiKeyAuth) else "a customer token" for a in auths
    )
    raise Problem(
        "unauthenticated", f"This call needs {names}.", headers={"WWW-Authenticate": "Bearer"}
    )
