from django.urls import path

from clients.views import client_editors, client_page, lists, selection

app_name = "clients"
urlpatterns = [
    path("", lists.CustomerListView.as_view(), name="client-list"),
    path("leads/", lists.LeadListView.as_view(), name="lead-list"),
    path("selection/", selection.SelectionView.as_view(), name="selection"),
    path("<int:pk>/", client_page.ClientDetailView.as_view(), name="client-detail"),
    path("<int:pk>/contact/", client_editors.ContactEditView.as_view(), name="contact-update"),
    path(
        "<int:pk>/default-addresses/",
        client_editors.DefaultAddressesEditView.as_view(),
        name="default-addresses-update",
    ),
    path(
        "<int:pk>/addresses/<int:address_pk>/",
        client_editors.AddressEditView.as_view(),
        name="address-update",
    ),
    path("<int:pk>/note/", client_editors.NoteEditView.as_view(), name="note-update"),
]
