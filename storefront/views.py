"""Pages of the storefront app: the API's documentation and problem types (public), and
Settings > API keys (Admins)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_not_required, permission_required
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from storefront import selectors, services
from storefront.forms import ApiKeyForm
from storefront.models import ApiKey
from storefront.problems import TYPES

MANAGE = "storefront.manage_apikey"

_schema = None


@login_not_required
@csrf_exempt
@require_safe
def api_schema(request):
    """The OpenAPI 3.1 schema, generated from the endpoints' code (once per process)."""
    global _schema
    if _schema is None:
        from storefront.api import openapi_schema

        _schema = openapi_schema()
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


@never_cache  # the page shows a new key once: never from a cache
@require_http_methods(["GET", "POST"])
@permission_required(MANAGE, raise_exception=True)
def apikey_list(request):
    """Settings > API keys: the keys, and a form to create one (shown once, then only its
    prefix)."""
    form = ApiKeyForm(request.POST or None)
    new_key = None
    if request.method == "POST" and form.is_valid():
        _api_key, new_key = services.api_key_create(
            name=form.cleaned_data["name"], scopes=form.cleaned_data["scopes"], actor=request.user
        )
        form = ApiKeyForm()
    return render(
        request,
        "storefront/apikey_list.html",
        {
            "form": form,
            "new_key": new_key,
            "keys": selectors.api_key_list(),
            "docs_url": reverse("api-docs"),
        },
        status=201 if new_key else 200,  # 201: a key was created (and is shown this once)
    )


@require_POST
@permission_required(MANAGE, raise_exception=True)
def apikey_revoke(request, pk: int):
    """Revoke a key: the shop's calls with it are refused from now on."""
    api_key = get_object_or_404(ApiKey, pk=pk)
    services.api_key_revoke(api_key=api_key, actor=request.user)
    messages.success(request, _("The key %(name)s is revoked.") % {"name": api_key.name})
    return redirect("storefront:apikey-list")
