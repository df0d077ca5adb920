from django.urls import path

from demo import views

app_name = "demo"
urlpatterns = [
    # Under /push/ like the storefront endpoints it calls (backoffice/urls.py mounts it).
    path("", views.storefront, name="storefront"),
]
