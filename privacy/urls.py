from django.urls import path

from privacy import views

app_name = "privacy"
urlpatterns = [
    path("privacy/", views.OverviewView.as_view(), name="overview"),
    path(
        "privacy/clients/<int:pk>/erase/",
        views.ErasureCreateView.as_view(),
        name="erasure-create",
    ),
    path(
        "privacy/erasures/<int:pk>/cancel/",
        views.ErasureCancelView.as_view(),
        name="erasure-cancel",
    ),
    path("audit/", views.AccessLogView.as_view(), name="audit"),
]
