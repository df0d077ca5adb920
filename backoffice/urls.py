from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="clients:client-list"), name="home"),
    path("", include("django.contrib.auth.urls")),
    path("clients/", include("clients.urls")),
    path("orders/", include("orders.urls")),
    path("push/", include("notifications.urls")),
    path("django-admin/", admin.site.urls),
]
