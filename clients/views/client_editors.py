"""The client page's inline editors: contact, default addresses, an address, the note.

Every editor works in two ways: with htmx it swaps one card of the page (a template partial);
without JavaScript its URL renders the whole page with that card in edit mode, and the form
posts back to it.
"""

from django.contrib import messages
from django.contrib.auth.mixins import PermissionRequiredMixin
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.utils.translation import gettext_lazy
from django.views import View

from clients.forms import AddressForm, ContactForm, DefaultAddressesForm, NoteForm
from clients.models import Address
from clients.presenters import change_rows
from clients.selectors import current_note, customer_addresses, customer_detail
from clients.services import (
    Conflict,
    address_set_default,
    address_update,
    address_values,
    customer_contact_values,
    customer_default_values,
    customer_update_contact,
    note_save,
)
from clients.views.client_page import (
    EDIT_PERMISSIONS,
    TEMPLATE,
    can_edit,
    client_page_context,
    history_context,
    is_htmx,
    note_context,
)


class SectionEditView(PermissionRequiredMixin, View):
    """One card of the client page in edit mode (GET) and its save (POST).

    Subclasses say which card (`section`, also the template partial's name) and provide the
    form, its initial state, the save, and the card's context.
    """

    section = ""
    success_message = ""

    def get_permission_required(self):
        return ("clients.view_customer", EDIT_PERMISSIONS[self.section])

    def setup(self, request, *args, **kwargs):
        super().setup(request, *args, **kwargs)
        self.customer = None

    def load(self) -> None:
        # An erased customer's card is no longer edited (privacy/): it is no longer anyone.
        self.customer = get_object_or_404(customer_detail(), pk=self.kwargs["pk"], erased_at=None)

    def get(self, request, **kwargs):
        self.load()
        return self.render_card(self.unbound_form(), editing=True)

    def post(self, request, **kwargs):
        self.load()
        form = self.bound_form()
        if not form.is_valid():
            return self.render_card(form, editing=True)
        try:
            self.save(form)
        except Conflict as conflict:
            self.load()
            self.rebase(form)
            return self.render_card(
                form, editing=True, conflict=self.conflict_context(conflict), status=409
            )
        if not is_htmx(request):
            messages.success(request, self.success_message)
            return redirect(self.customer.get_absolute_url() + f"#{self.section_anchor()}")
        self.load()
        return self.render_card(None, editing=False, saved=self.success_message)

    def section_anchor(self) -> str:
        return self.section

    def conflict_context(self, conflict: Conflict) -> dict:
        return {"rows": change_rows(conflict.changes), "by": conflict.by, "at": conflict.at}

    def card_context(self) -> dict:
        return {}

    def render_card(self, form, *, editing: bool, status: int = 200, **extra) -> HttpResponse:
        context = {
            "editing": self.section if editing else "",
            "form": form,
            **extra,
        }
        if not is_htmx(self.request):
            page = client_page_context(self.request, self.customer, **context)
            return render(self.request, TEMPLATE, page, status=status)
        context.update(
            customer=self.customer, can_edit=can_edit(self.request.user), **self.card_context()
        )
        html = render_to_string(f"{TEMPLATE}#{self.partial}", context, self.request)
        if not editing:
            # A save adds to the change history: refresh that card too, out of band.
            oob = {**context, **history_context(self.request, self.customer), "oob": True}
            html += render_to_string(f"{TEMPLATE}#header", oob, self.request)
            html += render_to_string(f"{TEMPLATE}#history", oob, self.request)
        # htmx swaps only successful responses: a refused save is still a page to show.
        return HttpResponse(html, status=200)

    @property
    def partial(self) -> str:
        return self.section

    # Subclasses implement these.
    def unbound_form(self):
        raise NotImplementedError

    def bound_form(self):
        raise NotImplementedError

    def save(self, form) -> None:
        raise NotImplementedError

    def rebase(self, form) -> None:
        raise NotImplementedError


class ContactEditView(SectionEditView):
    section = "contact"
    success_message = gettext_lazy("Contact saved.")

    def unbound_form(self):
        return ContactForm(
            initial={"email": self.customer.email, **customer_contact_values(self.customer)},
            version=self.customer.version,
            base=customer_contact_values(self.customer),
        )

    def bound_form(self):
        # The email is passed as initial only: the form's disabled field ignores posted data.
        return ContactForm(self.request.POST, initial={"email": self.customer.email})

    def save(self, form) -> None:
        data = form.cleaned_data
        customer_update_contact(
            customer=self.customer,
            actor=self.request.user,
            version=data["version"],
            base=data["base"],
            first_name=data["first_name"],
            last_name=data["last_name"],
            phone=data["phone"],
        )

    def rebase(self, form) -> None:
        form.rebase(version=self.customer.version, base=customer_contact_values(self.customer))


class _AddressesCard(SectionEditView):
    partial = "addresses"

    def section_anchor(self) -> str:
        return "addresses"

    def card_context(self) -> dict:
        return {"addresses": customer_addresses(customer_id=self.customer.pk)}


class DefaultAddressesEditView(_AddressesCard):
    section = "defaults"
    success_message = gettext_lazy("Default addresses saved.")

    def load(self) -> None:
        super().load()
        self.addresses = customer_addresses(customer_id=self.customer.pk)

    def card_context(self) -> dict:
        return {"addresses": self.addresses}

    def _form(self, *args, **kwargs):
        return DefaultAddressesForm(
            *args, customer=self.customer, addresses=self.addresses, **kwargs
        )

    def unbound_form(self):
        values = customer_default_values(self.customer)
        return self._form(
            initial={
                "billing": values["default_billing_address"],
                "shipping": values["default_shipping_address"],
            },
            version=self.customer.version,
            base=values,
        )

    def bound_form(self):
        return self._form(self.request.POST)

    def save(self, form) -> None:
        data = form.cleaned_data
        try:
            address_set_default(
                customer=self.customer,
                actor=self.request.user,
                version=data["version"],
                base=data["base"],
                billing=data["billing"],
                shipping=data["shipping"],
            )
        except Address.DoesNotExist:
            # The customer removed a chosen address (storefront API) after the form found it.
            raise Http404("This address was removed.") from None

    def rebase(self, form) -> None:
        form.rebase(version=self.customer.version, base=customer_default_values(self.customer))


class AddressEditView(_AddressesCard):
    section = "addresses"
    success_message = gettext_lazy("Address saved.")

    def load(self) -> None:
        super().load()
        self.address = get_object_or_404(
            Address.objects.filter(customer=self.customer), pk=self.kwargs["address_pk"]
        )

    def render_card(self, form, *, editing: bool, status: int = 200, **extra):
        return super().render_card(
            form, editing=editing, status=status, edit_address=self.address, **extra
        )

    def unbound_form(self):
        values = address_values(self.address)
        return AddressForm(initial=values, version=self.address.version, base=values)

    def bound_form(self):
        return AddressForm(self.request.POST)

    def save(self, form) -> None:
        data = dict(form.cleaned_data)
        version, base = data.pop("version"), data.pop("base")
        try:
            address_update(
                address=self.address, actor=self.request.user, version=version, base=base, **data
            )
        except Address.DoesNotExist:
            # The customer removed it (storefront API) after this request found it: as if it
            # had been gone already (it was a 500).
            raise Http404("This address was removed.") from None

    def rebase(self, form) -> None:
        form.rebase(version=self.address.version, base=address_values(self.address))


class NoteEditView(SectionEditView):
    section = "note"
    success_message = gettext_lazy("Note saved.")

    def card_context(self) -> dict:
        return note_context(self.request, self.customer)

    def _current(self):
        return current_note(self.customer)

    def unbound_form(self):
        current = self._current()
        return NoteForm(
            initial={
                "text": current.text if current else "",
                "based_on": current.pk if current else None,
            }
        )

    def bound_form(self):
        return NoteForm(self.request.POST)

    def save(self, form) -> None:
        note_save(
            customer=self.customer,
            actor=self.request.user,
            text=form.cleaned_data["text"],
            based_on=form.cleaned_data["based_on"],
        )

    def rebase(self, form) -> None:
        current = self._current()
        data = form.data.copy()
        data["based_on"] = current.pk if current else ""
        form.data = data
