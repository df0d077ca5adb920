"""The order page."""

from django.contrib.auth.mixins import PermissionRequiredMixin
from django.http import Http404
from django.views.generic import DetailView

from orders.selectors import order_page


class OrderDetailView(PermissionRequiredMixin, DetailView):
    permission_required = ("orders.view_order", "clients.view_customer")
    template_name = "orders/order_detail.html"
    context_object_name = "order"

    def get_object(self, queryset=None):
        order = order_page(number=self.kwargs["number"])
        if order is None:
            raise Http404("No Order matches the given query.")
        return order
