from django.contrib.auth.decorators import login_not_required
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt

from storefront import views
from storefront.api import api
from storefront.middleware import api_operation

# The API authenticates each call itself (storefront/auth.py), never by session or cookie:
# no login redirect, and no CSRF check (nothing a browser sends on its own is trusted). The
# operations skip the back office's session, user and CSRF middleware (storefront/middleware.py).
_api_patterns, _app_name, _namespace = api.urls
for _pattern in _api_patterns:
    _pattern.callback = api_operation(csrf_exempt(login_not_required(_pattern.callback)))

urlpatterns = [
    path("v1/openapi.json", views.api_schema, name="api-schema"),
    path("v1/docs", views.api_docs, name="api-docs"),
    path("v1/problems/<slug:slug>", views.problem_type, name="api-problem"),
    path("v1/", include((_api_patterns, _app_name), namespace=_namespace)),
]
