from django.urls import path

from segments import views

app_name = "segments"
urlpatterns = [
    path("", views.segment_create, name="segment-create"),
    path("<int:pk>/", views.segment_detail, name="segment-detail"),
    path("<int:pk>/rename/", views.segment_rename, name="segment-rename"),
    path("<int:pk>/delete/", views.segment_delete, name="segment-delete"),
]
