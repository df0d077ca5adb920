from django.contrib import admin
from django.contrib.auth.decorators import login_not_required
from django.urls import include, path
from django.views.generic import RedirectView
from django.views.i18n import set_language

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="clients:client-list"), name="home"),
    path("", include("django.contrib.auth.urls")),
    # The language switch, offered on the login page too.
    path("i18n/setlang/", login_not_required(set_language), name="set_language"),
    path("clients/", include("clients.urls")),
    path("orders/", include("orders.urls")),
    path("push/", include("notifications.urls")),
    path("django-admin/", admin.site.urls),
]
