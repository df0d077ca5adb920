"""The order page."""

from django.contrib.auth.mixins import PermissionRequiredMixin
from django.shortcuts import get_object_or_404
from django.views.generic import DetailView

from orders.selectors import order_detail


class OrderDetailView(PermissionRequiredMixin, DetailView):
    permission_required = ("orders.view_order", "clients.view_customer")
    template_name = "orders/order_detail.html"
    context_object_name = "order"

    def get_object(self, queryset=None):
        return get_object_or_404(order_detail(), number=self.kwargs["number"])
