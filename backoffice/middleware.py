"""Middleware of the back office's own."""

from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpResponse, HttpResponseNotFound
from django.shortcuts import resolve_url
from django.utils.cache import patch_cache_control
from django.views.defaults import page_not_found


class PrivatePagesMiddleware:
    """Pages seen by a logged-in user are never stored by a cache, and htmx requests that
    lost their session send the browser to the login page.

    Every page behind the login is full of customers' personal data: `private, no-store`
    keeps it out of shared caches (a proxy, a CDN) and out of the browser's disk cache, so it
    cannot be read back after logging out on a shared computer.

    An htmx request (the campaign page's progress poll, an inline edit) whose session has
    expired is redirected to the login page like any request; htmx would follow that redirect
    in the background and swap the whole login page into the card. `HX-Redirect` makes htmx
    load the login page as a page instead, coming back to the page the user was on.

    Placed after AuthenticationMiddleware (it reads request.user) and before
    LoginRequiredMiddleware (it sees that middleware's redirect).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            patch_cache_control(response, private=True, no_store=True)
        elif request.headers.get("HX-Request") and _is_login_redirect(response):
            response = _hx_login_redirect(request)
        return response


def _is_login_redirect(response) -> bool:
    if response.status_code != 302:
        return False
    login_path = resolve_url(settings.LOGIN_URL)
    return urlsplit(response.get("Location", "")).path == login_path


def _hx_login_redirect(request) -> HttpResponse:
    # The page the user is looking at (htmx sends it), not the fragment's URL.
    current = urlsplit(request.headers.get("HX-Current-URL", ""))
    next_path = current.path or request.path
    if current.query:
        next_path += "?" + current.query
    if next_path.startswith("/") and not next_path.startswith("//"):
        target = redirect_to_login(next_path)["Location"]
    else:
        target = resolve_url(settings.LOGIN_URL)
    response = HttpResponse(status=204)
    response["HX-Redirect"] = target
    patch_cache_control(response, private=True, no_store=True)
    return response


class NotFoundPageMiddleware:
    """With DEBUG on too, a page that does not exist gets the back office's own 404 page
    (templates/404.html) rather than Django's technical page listing the URL patterns, so the
    demo (`make run`) looks as production does.

    Two ways lead to a 404: a view raises Http404 (seen here in process_exception), or no URL
    pattern matches (Django then answers with its technical page before any view runs:
    recognised here as a plain HttpResponseNotFound to a request that resolved to no view).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (
            settings.DEBUG
            and type(response) is HttpResponseNotFound
            and getattr(request, "resolver_match", None) is None
        ):
            return page_not_found(request, Http404())
        return response

    def process_exception(self, request, exception):
        if settings.DEBUG and isinstance(exception, Http404):
            return page_not_found(request, exception)
        return None
