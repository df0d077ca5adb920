from django.apps import apps
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.urls import include, path
from django.views.generic import RedirectView
from django.views.i18n import set_language

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="clients:client-list"), name="home"),
    # Log in, log out and change one's password. No password reset by email: the back office
    # sends no email; an administrator sets a forgotten password (Django admin or
    # `manage.py changepassword`).
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("password_change/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path(
        "password_change/done/",
        auth_views.PasswordChangeDoneView.as_view(),
        name="password_change_done",
    ),
    # The language switch, offered on the login page too.
    path("i18n/setlang/", login_not_required(set_language), name="set_language"),
    path("clients/", include("clients.urls")),
    path("orders/", include("orders.urls")),
    path("lifecycle/", include("lifecycle.urls")),
    path("push/", include("notifications.urls")),
    path("exports/", include("exports.urls")),
    path("segments/", include("segments.urls")),
    path("tags/", include("tags.urls")),
    path("imports/", include("imports.urls")),
    *([path("push/demo/", include("demo.urls"))] if apps.is_installed("demo") else []),
    # The storefront API: its own authentication (API keys, customer tokens), no session.
    path("api/", include("storefront.urls")),
    path("settings/", include("storefront.backoffice_urls")),
    # /privacy/... (erasure, consents, data archives, retention) and /audit/ (the access log).
    path("", include("privacy.urls")),
    path("django-admin/", admin.site.urls),
]
