from django.urls import path

from imports import views

app_name = "imports"
urlpatterns = [
    path("", views.job_list, name="job-list"),
    path("<int:pk>/", views.job_detail, name="job-detail"),
    path("<int:pk>/columns/", views.job_mapping, name="job-mapping"),
    path("<int:pk>/apply/", views.job_apply, name="job-apply"),
    path("<int:pk>/cancel/", views.job_cancel, name="job-cancel"),
    path("<int:pk>/resume/", views.job_resume, name="job-resume"),
    path("<int:pk>/refused.csv", views.job_refused_csv, name="job-refused-csv"),
]
