"""Signed tokens: click links in notifications, and the storefront's customer token.

Storefront token
----------------
The storefront proves which customer a browser belongs to with a token it issues while the
customer is logged in to the shop:

    message = "<customer id>.<unix time>"
    token = message + "." + hex(HMAC-SHA256(key=PUSH_STOREFRONT_SECRET, data=message))

for example, in Python: `storefront_token_issue(customer_id=42)`; in any other language, the
same HMAC over the same string. The back office accepts it for PUSH_STOREFRONT_TOKEN_MAX_AGE
seconds (7 days by default). PUSH_STOREFRONT_SECRET must be shared by the shop and the back
office only; by default it is derived from SECRET_KEY (fine when the storefront runs this
code base; set it explicitly when the storefront is a separate application).
"""

import base64
import hashlib
import hmac
import time
from functools import lru_cache

from django.conf import settings

_CLICK_SALT = b"notifications.click"


@lru_cache(maxsize=8)
def _click_key(secret: str) -> bytes:
    return hashlib.sha256(_CLICK_SALT + b":" + secret.encode()).digest()


def _click_mac(secret: str, message: str) -> str:
    digest = hmac.digest(_click_key(secret), message.encode("ascii"), hashlib.sha256)
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode("ascii")


def click_token(*, campaign_id: int, subscription_id: int) -> str:
    """The token of a notification's click link, for one campaign and one subscription.

    "<campaign>.<subscription>.<128-bit HMAC-SHA256 under a key derived from SECRET_KEY>".
    Every message of a campaign carries its own, so it is built with one HMAC (about 20
    times faster than django.core.signing, which re-derives its key on every call).
    """
    message = f"{campaign_id}.{subscription_id}"
    return f"{message}.{_click_mac(settings.SECRET_KEY, message)}"


def click_token_read(token: str) -> tuple[int, int] | None:
    """(campaign id, subscription id) from a click token, or None if it was not ours.

    Tokens signed with a key in SECRET_KEY_FALLBACKS still count, so rotating the secret
    key does not break the links of notifications already delivered.
    """
    # ASCII only: hmac.compare_digest raises TypeError on other strings.
    ok = isinstance(token, str) and len(token) <= 100 and token.isascii()
    parts = token.split(".") if ok else []
    if len(parts) != 3 or not all(p.isdigit() and p.isascii() for p in parts[:2]):
        return None
    message = f"{parts[0]}.{parts[1]}"
    for secret in [settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS]:
        if hmac.compare_digest(_click_mac(secret, message), parts[2]):
            return int(parts[0]), int(parts[1])
    return None


def _storefront_secret() -> bytes:
    secret = getattr(settings, "PUSH_STOREFRONT_SECRET", "")
    if secret:
        return secret.encode()
    return hashlib.sha256(b"notifications.storefront:" + settings.SECRET_KEY.encode()).digest()


def _storefront_mac(message: str) -> str:
    return hmac.new(_storefront_secret(), message.encode(), hashlib.sha256).hexdigest()


def storefront_token_issue(*, customer_id: int, now: float | None = None) -> str:
    """A token the storefront gives a logged-in customer's browser (see the module docs)."""
    message = f"{customer_id}.{int(now if now is not None else time.time())}"
    return f"{message}.{_storefront_mac(message)}"


def storefront_token_read(token, *, now: float | None = None) -> int | None:
    """The customer id a storefront token was issued for, or None if invalid or too old."""
    if not isinstance(token, str) or len(token) > 200 or not token.isascii():
        return None  # hmac.compare_digest raises TypeError on non-ASCII strings
    parts = token.split(".")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
        return None
    if not hmac.compare_digest(_storefront_mac(f"{parts[0]}.{parts[1]}"), parts[2]):
        return None
    age = (now if now is not None else time.time()) - int(parts[1])
    max_age = getattr(settings, "PUSH_STOREFRONT_TOKEN_MAX_AGE", 7 * 86400)
    if age > max_age or age < -300:
        return None
    return int(parts[0])
