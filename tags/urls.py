from django.urls import path

from tags import views

app_name = "tags"
urlpatterns = [
    path("", views.tag_list, name="tag-list"),
    path("<int:pk>/rename/", views.tag_rename, name="tag-rename"),
    path("<int:pk>/merge/", views.tag_merge, name="tag-merge"),
    path("<int:pk>/delete/", views.tag_delete, name="tag-delete"),
    path("customers/<int:pk>/", views.customer_tags_update, name="customer-tags-update"),
    path("bulk/", views.bulk_tag, name="bulk-tag"),
    path("jobs/<int:pk>/", views.job_detail, name="job-detail"),
]
