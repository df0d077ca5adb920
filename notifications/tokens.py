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

import hashlib
import hmac
import time

from django.conf import settings
from django.core import signing

_CLICK_SALT = "notifications.click"


def click_token(*, campaign_id: int, subscription_id: int) -> str:
    """The token of a notification's click link, for one campaign and one subscription."""
    return signing.Signer(salt=_CLICK_SALT).sign_object([campaign_id, subscription_id])


def click_token_read(token: str) -> tuple[int, int] | None:
    """(campaign id, subscription id) from a click token, or None if it was not ours."""
    try:
        value = signing.Signer(salt=_CLICK_SALT).unsign_object(token)
    except (signing.BadSignature, ValueError, TypeError, UnicodeError):
        return None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
    ):
        return None
    return value[0], value[1]


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
    if not isinstance(token, str) or len(token) > 200:
        return None
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
