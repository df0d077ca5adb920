"""Which push subscription endpoints the back office accepts, and why it refuses the others.

An endpoint is a URL the workers POST to: the storefront gets it from the customer's browser,
so it is attacker-controlled. It is accepted only if it is what a browser's push service hands
out and nothing more:

- at most MAX_LENGTH characters, only characters RFC 3986 allows in a URL (ASCII letters and
  digits, ``-._~:/?#[]@!$&'()*+,;=`` and ``%`` followed by two hex digits); so no whitespace,
  no control character (CR/LF would end the request line), no raw non-ASCII, no backslash;
- ``https`` on a host of ``PUSH_ENDPOINT_HOSTS`` (a leading dot allows subdomains), written
  in lower case, without user info, without a port (the default port only), with a path
  starting with ``/``, without ``.``/``..`` segments, without a fragment, without a
  percent-encoded control character;
- and it reads back unchanged: splitting it and joining the parts again gives the same string,
  so what is stored is byte for byte the request target the workers write.

With ``PUSH_ALLOW_LOOPBACK_ENDPOINTS`` (tests, the demo push service, ``DEBUG``), ``http`` or
``https`` on a loopback address (``127.0.0.1``, ``[::1]``) or ``localhost`` is accepted too, on
any port; the other rules still apply.

The storefront's views check this before storing a subscription, and the sender checks it again
before a request is built (a row that got in another way is refused there).
"""

import functools
import ipaddress
import re
from urllib.parse import urlsplit

from django.conf import settings

MAX_LENGTH = 1024

# RFC 3986 section 2: unreserved, gen-delims, sub-delims, and "%" (checked as pct-encoded below).
_URL_CHARACTERS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*")
_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_PERCENT_CONTROL = re.compile(r"%(?:[01][0-9A-Fa-f]|7[Ff])")
_ENCODED_DOTS = re.compile(r"%2[eE](?:%2[eE])?|\.%2[eE]|%2[eE]\.")
# A host name as browsers serialise it: lower-case labels of letters, digits and hyphens.
_HOST_NAME = re.compile(
    r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
)


def _character_problem(url: str) -> str | None:
    # Fast path (every endpoint the sender re-checks): an ASCII string the character class
    # matches holds no control character, no non-ASCII character and no space, so the
    # per-character loop below could not find anything; only the percent checks remain.
    if url.isascii() and _URL_CHARACTERS.fullmatch(url) is not None:
        return _percent_problem(url)
    for index, char in enumerate(url):
        code = ord(char)
        if code > 0x7E:
            if code == 0x7F:
                return f"contains a control character (U+007F at position {index})"
            return f"contains a non-ASCII character (U+{code:04X} at position {index})"
        if code < 0x20:
            return f"contains a control character (U+{code:04X} at position {index})"
        if char == " ":
            return f"contains a space (at position {index})"
    match = _URL_CHARACTERS.fullmatch(url)
    if match is None:
        bad = next(c for c in url if not _URL_CHARACTERS.fullmatch(c))
        return f"contains {bad!r}, which a URL may not contain"
    return _percent_problem(url)


def _percent_problem(url: str) -> str | None:
    if _PERCENT.search(url):
        return "contains a '%' that is not followed by two hexadecimal digits"
    if _PERCENT_CONTROL.search(url):
        return "contains a percent-encoded control character"
    return None


@functools.lru_cache(maxsize=256)
def _loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _push_host(host: str) -> bool:
    for allowed in settings.PUSH_ENDPOINT_HOSTS:
        allowed = allowed.lower()
        if host == allowed.lstrip("."):
            return True
        if allowed.startswith(".") and host.endswith(allowed):
            return True
    return False


def endpoint_problem(url: str) -> str | None:
    """None if the workers may POST to this subscription endpoint, else why not (a sentence)."""
    if not isinstance(url, str) or not url:
        return "The endpoint must be a non-empty string."
    if len(url) > MAX_LENGTH:
        return f"The endpoint is longer than {MAX_LENGTH} characters."
    problem = _character_problem(url)
    if problem:
        return f"The endpoint {problem}."
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"The endpoint is not a valid URL ({exc})."
    if parts.geturl() != url:
        return "The endpoint does not read back unchanged as a URL."
    if parts.scheme not in ("https", "http"):
        return "The endpoint must be an https URL."
    if "@" in parts.netloc:
        return "The endpoint must not contain user information (user@host)."
    if parts.fragment or "#" in url:
        return "The endpoint must not have a fragment (#...)."
    host = parts.hostname or ""
    loopback = settings.PUSH_ALLOW_LOOPBACK_ENDPOINTS and _loopback_host(host)
    bracketed = parts.netloc.startswith("[")
    netloc_host = parts.netloc.rsplit(":", 1)[0] if port is not None else parts.netloc
    if netloc_host.endswith(":") or parts.netloc.endswith(":"):
        return "The endpoint has an empty port."
    if (port is not None and parts.netloc.rsplit(":", 1)[1] != str(port)) or port == 0:
        return "The endpoint's port must be a number from 1 to 65535 without leading zeros."
    if bracketed:
        if not loopback:
            return "The endpoint's host is not a known push service."
    elif not _HOST_NAME.fullmatch(netloc_host):
        if netloc_host.lower() == netloc_host:
            return "The endpoint's host is not a valid host name."
        return "The endpoint's host must be written in lower case."
    if not loopback:
        if parts.scheme != "https":
            return "The endpoint must be an https URL."
        if port is not None:
            return "The endpoint must not name a port (push services use the default one)."
        if not _push_host(host):
            return "The endpoint's host is not a known push service."
    if not parts.path.startswith("/"):
        return "The endpoint must have a path starting with '/'."
    segments = parts.path.split("/")
    if any(segment in (".", "..") for segment in segments):
        return "The endpoint's path must not contain '.' or '..' segments."
    if "%" in parts.path and any(_ENCODED_DOTS.fullmatch(s) for s in segments):
        return "The endpoint's path must not contain encoded '.' or '..' segments."
    return None
