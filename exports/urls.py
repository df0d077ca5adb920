from django.urls import path

from exports import views

app_name = "exports"
urlpatterns = [
    path("", views.ExportListView.as_view(), name="export-list"),
    path("new/", views.ExportCreateView.as_view(), name="export-create"),
    path("<int:pk>/", views.ExportDetailView.as_view(), name="export-detail"),
    path("<int:pk>/download/", views.ExportDownloadView.as_view(), name="export-download"),
]
