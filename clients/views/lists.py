"""The Clients and Leads tabs: the list object (clients/listing.py) does the work."""

from django.contrib.auth.mixins import PermissionRequiredMixin
from django.views.generic import TemplateView

from clients.listing import CustomerList


class CustomerListView(PermissionRequiredMixin, TemplateView):
    permission_required = "clients.view_customer"
    template_name = "clients/client_list.html"
    tab = "clients"

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), "listing": self.get_listing()}

    def get_listing(self) -> CustomerList:
        return CustomerList(self.request, tab=self.tab)


class LeadListView(CustomerListView):
    tab = "leads"
