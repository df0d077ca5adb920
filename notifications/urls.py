from django.urls import path

from notifications import storefront, views

app_name = "notifications"
urlpatterns = [
    path("", views.campaign_list, name="campaign-list"),
    path("new/", views.campaign_create, name="campaign-create"),
    path("new/test/", views.campaign_test, name="campaign-test"),
    path("<int:pk>/", views.campaign_detail, name="campaign-detail"),
    path("<int:pk>/cancel/", views.campaign_cancel, name="campaign-cancel"),
    path("c/<str:token>", views.click, name="click"),
    path("storefront/key", storefront.public_key, name="storefront-key"),
    path("storefront/subscribe", storefront.subscribe, name="storefront-subscribe"),
    path("storefront/unsubscribe", storefront.unsubscribe, name="storefront-unsubscribe"),
    path("storefront/resubscribe", storefront.resubscribe, name="storefront-resubscribe"),
]
