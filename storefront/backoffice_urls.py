"""Back-office pages of the storefront app (Settings > API keys)."""

from django.urls import path

from storefront import views

app_name = "storefront"
urlpatterns = [
    path("api-keys/", views.apikey_list, name="apikey-list"),
    path("api-keys/<int:pk>/revoke/", views.apikey_revoke, name="apikey-revoke"),
]
