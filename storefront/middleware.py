"""Under /api/: every error is problem+json (even those raised before an endpoint runs: an
unknown path, a wrong method, a crash), and the browser-facing endpoints answer CORS."""

from django.conf import settings
from django.http import HttpResponse

from storefront.problems import TYPES, Problem, is_problem, problem_response

API_PREFIX = "/api/"
# Called from customers' browsers on the shop's own origins (customer token, no API key).
BROWSER_PATHS = ("/api/v1/push/", "/api/v1/launches")
_CORS_HEADERS = "Content-Type, X-Customer-Token, Idempotency-Key"
# The generic type of each status, for errors raised before the API's own handling (a
# DisallowedHost is a 400 about the request, not its JSON).
_BY_STATUS = {t.status: t.slug for t in reversed(TYPES.values())} | {400: "bad-request"}


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

    def __call__(self, request):
        if not request.path.startswith(API_PREFIX):
            return self.get_response(request)
        browser = request.path.startswith(BROWSER_PATHS)
        if browser and request.method == "OPTIONS":
            return _cors(request, HttpResponse(status=204))
        response = self.get_response(request)
        if response.status_code >= 400 and not is_problem(response):
            response = self._as_problem(response)
        if "Authorization" in request.headers or "X-Customer-Token" in request.headers:
            # Customers' data, for one caller: no shared or browser cache keeps it.
            response["Cache-Control"] = "no-store, private"
        return _cors(request, response) if browser else response

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
