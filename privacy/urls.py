from django.urls import path

from privacy import views

app_name = "privacy"
urlpatterns = [
    path("clients/<int:pk>/erase/", views.ErasureCreateView.as_view(), name="erasure-create"),
    path("erasures/<int:pk>/cancel/", views.ErasureCancelView.as_view(), name="erasure-cancel"),
]
