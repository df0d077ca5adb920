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
    path(
        "privacy/clients/<int:pk>/consents/",
        views.ConsentCreateView.as_view(),
        name="consent-create",
    ),
    path(
        "privacy/clients/<int:pk>/archive/",
        views.ArchiveCreateView.as_view(),
        name="archive-create",
    ),
    path("privacy/archives/<int:pk>/", views.ArchiveDetailView.as_view(), name="archive-detail"),
    path(
        "privacy/archives/<int:pk>/download/",
        views.ArchiveDownloadView.as_view(),
        name="archive-download",
    ),
    path("audit/", views.AccessLogView.as_view(), name="audit"),
]
