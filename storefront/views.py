"""Pages of the storefront app: the API's documentation and problem types (public), and
Settings > API keys (Admins)."""

from django.contrib.auth.decorators import login_not_required
from django.http import Http404, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_safe

from storefront.problems import TYPES

_schema = None


@login_not_required
@csrf_exempt
@require_safe
def api_schema(request):
    """The OpenAPI 3.1 schema, generated from the endpoints' code (once per process)."""
    global _schema
    if _schema is None:
        from storefront.api import api

        _schema = api.get_openapi_schema(path_prefix=reverse("api:api-root"))
    return JsonResponse(_schema)


@login_not_required
@csrf_exempt  # takes no POST: refused with 405 (a problem document), not a CSRF page
@require_safe
def api_docs(request):
    """The API's documentation: Swagger UI (vendored) over the generated OpenAPI schema."""
    return render(request, "storefront/api_docs.html", {"schema_url": reverse("api-schema")})


@login_not_required
@csrf_exempt
@require_safe
def problem_type(request, slug: str):
    """What a problem `type` URI means (RFC 9457 recommends that it can be dereferenced)."""
    kind = TYPES.get(slug)
    if kind is None:
        raise Http404("No such problem type.")
    return JsonResponse(
        {
            "type": kind.uri,
            "title": kind.title,
            "status": kind.status,
            "description": kind.description,
        }
    )
