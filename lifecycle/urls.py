from django.urls import path

from lifecycle import views

app_name = "lifecycle"

urlpatterns = [
    path("", views.DashboardView.as_view(), name="dashboard"),
    path("overdue/", views.OverdueView.as_view(), name="overdue"),
]
