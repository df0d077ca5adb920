"""The client's address for login throttling, also behind a reverse proxy."""

from django.conf import settings
from django.http import HttpRequest


def client_ip_address(request: HttpRequest) -> str:
    """REMOTE_ADDR, or with TRUSTED_PROXY_COUNT proxies in front, the address the outermost
    trusted proxy saw: X-Forwarded-For's entries left of the proxies' own are client-supplied
    and could be forged, so only the one the proxies appended is believed."""
    remote = request.META.get("REMOTE_ADDR", "")
    count = settings.TRUSTED_PROXY_COUNT
    if count <= 0:
        return remote
    forwarded = [a.strip() for a in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    forwarded = [a for a in forwarded if a]
    if len(forwarded) < count:
        return remote
    return forwarded[-count]


def login_username(request: HttpRequest, credentials: dict | None) -> str | None:
    """The username a failed login is recorded under, cut to what axes can store.

    Django's login form does not enforce the username's length before authenticating, so a
    hostile 1,000-character username reached axes' 255-character column (a 500 on
    PostgreSQL). Real usernames are at most 150 characters, so nothing real is cut.
    """
    username = (credentials or {}).get("username")
    if username is None and request is not None and request.method == "POST":
        username = request.POST.get("username")
    return username[:255] if isinstance(username, str) else username
