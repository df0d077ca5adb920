"""Under /api/: every error is problem+json (even those raised before an endpoint runs: an
unknown path, a wrong method, a crash), and the browser-facing endpoints answer CORS.

The API's operations skip the back office's own middleware. A call is authenticated by its
key or customer token (storefront/auth.py), never by a session or a cookie, so sessions,
users, CSRF, messages, login redirects, django-axes and the back office's 404 page do nothing
for it but cost CPU on every call. An operation (a ninja view, marked by `api_operation` in
storefront/urls.py) runs under the middleware listed in API_MIDDLEWARE only: the language
(LocaleMiddleware: Content-Language and Vary as before) and the security headers
(X-Frame-Options, Content-Security-Policy), after the Host check (ALLOWED_HOSTS) and with
Content-Length set, as CommonMiddleware does. Everything above this middleware in
settings.MIDDLEWARE (SecurityMiddleware, WhiteNoise, GZip) still applies. Any other path
under /api/ (the schema, the documentation page, an unknown path) goes through the whole
chain.
"""

from django.conf import settings
from django.core.handlers.exception import convert_exception_to_response
from django.http import HttpResponse
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.csp import ContentSecurityPolicyMiddleware
from django.middleware.locale import LocaleMiddleware
from django.urls import Resolver404, get_resolver

from storefront.problems import TYPES, Problem, is_problem, problem_response

API_PREFIX = "/api/"
# Called from customers' browsers on the shop's own origins (customer token, no API key).
BROWSER_PATHS = ("/api/v1/push/", "/api/v1/launches")
_CORS_HEADERS = "Content-Type, X-Customer-Token, Idempotency-Key"
# The generic type of each status, for errors raised before the API's own handling (a
# DisallowedHost is a 400 about the request, not its JSON).
_BY_STATUS = {t.status: t.slug for t in reversed(TYPES.values())} | {400: "bad-request"}


API_MIDDLEWARE = (LocaleMiddleware, XFrameOptionsMiddleware, ContentSecurityPolicyMiddleware)


def api_operation(view):
    """Mark a view as an API operation: it runs under API_MIDDLEWARE only."""
    view.api_operation = True
    return view


def _operation(request):
    # The Host check CommonMiddleware makes (DisallowedHost: 400).
    request.get_host()
    match = request.resolver_match
    return match.func(request, *match.args, **match.kwargs)


def _operation_chain():
    handler = convert_exception_to_response(_operation)
    for middleware in reversed(API_MIDDLEWARE):
        handler = convert_exception_to_response(middleware(handler))
    return handler


def _cors(request, response):
    origin = request.headers.get("Origin")
    if origin and origin in settings.STOREFRONT_API_BROWSER_ORIGINS:
        response["Access-Control-Allow-Origin"] = origin
        response["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        response["Access-Control-Allow-Headers"] = _CORS_HEADERS
        response["Access-Control-Max-Age"] = "3600"
        response["Vary"] = "Origin"
    return response


class ApiMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self.operation = _operation_chain()

    def __call__(self, request):
        if not request.path.startswith(API_PREFIX):
            return self.get_response(request)
        browser = request.path.startswith(BROWSER_PATHS)
        if browser and request.method == "OPTIONS":
            return _cors(request, HttpResponse(status=204))
        operation = self._operation(request)
        response = operation or self.get_response(request)
        if response.status_code >= 400 and not is_problem(response):
            response = self._as_problem(response)
        if (
            operation is not None
            or "Authorization" in request.headers
            or "X-Customer-Token" in request.headers
        ):
            # Customers' data, for one caller: no shared or browser cache keeps it (nor an
            # answer to a browser logged in to the back office, which PrivatePagesMiddleware
            # would mark so on the whole chain).
            response["Cache-Control"] = "no-store, private"
        return _cors(request, response) if browser else response

    def _operation(self, request):
        """An API operation's response through API_MIDDLEWARE, or None for another path."""
        if hasattr(request, "urlconf"):
            return None
        try:
            match = get_resolver().resolve(request.path_info)
        except Resolver404:
            return None
        if not getattr(match.func, "api_operation", False):
            return None
        request.resolver_match = match
        response = self.operation(request)
        if not response.streaming and not response.has_header("Content-Length"):
            # As CommonMiddleware does (the client needs no chunked encoding).
            response.headers["Content-Length"] = str(len(response.content))
        return response

    def _as_problem(self, response):
        status = response.status_code
        slug = _BY_STATUS.get(status, "server-error" if status >= 500 else "bad-request")
        detail = {
            404: "No such path in this API.",
            405: "This path does not take this method.",
        }.get(status, "")
        problem = Problem(slug, detail, status=status)
        if "Allow" in response:
            problem.headers["Allow"] = response["Allow"]
        for header in ("Retry-After", "Cache-Control", "Vary"):
            if header in response:
                problem.headers[header] = response[header]
        return problem_response(problem)
