from django.urls import path

from orders import views

app_name = "orders"
urlpatterns = [
    path("<str:number>/", views.OrderDetailView.as_view(), name="order-detail"),
]
