"""The client page (/clients/<id>/) and its inline editors: contact, addresses, note.

Every editor works in two ways: with htmx it swaps one card of the page (a template partial);
without JavaScript its URL renders the whole page with that card in edit mode, and the form
posts back to it.
"""

import functools
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from urllib.parse import quote

from django.contrib import messages
from django.contrib.auth.mixins import PermissionRequiredMixin
from django.core.paginator import Page
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.loader import render_to_string
from django.utils import translation
from django.utils.formats import date_format, number_format
from django.utils.html import escape
from django.utils.safestring import mark_safe
from django.utils.timezone import localtime
from django.utils.translation import get_language, gettext, gettext_lazy, ngettext
from django.views import View

from backoffice.templatetags.formatting import money
from clients.forms import AddressForm, ContactForm, DefaultAddressesForm, NoteForm
from clients.models import Address, AuditOrigin, Customer
from clients.selectors import (
    audit_entries,
    current_note,
    customer_addresses,
    customer_detail,
    note_versions,
)
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
from clients.tables import url_pattern
from clients.views.lists import KnownCountPaginator
from orders.models import OrderStatus
from orders.selectors import customer_monthly_spend, customer_orders, customer_purchase_summary
from storefront.selectors import customer_origin

TEMPLATE = "clients/client_detail.html"
ORDERS_PER_PAGE = 20
NOTES_PER_PAGE = 10
HISTORY_PER_PAGE = 10

FIELD_LABELS = {
    "first_name": gettext_lazy("First name"),
    "last_name": gettext_lazy("Last name"),
    "phone": gettext_lazy("Phone"),
    "email": gettext_lazy("Email"),
    "default_billing_address": gettext_lazy("Default billing address"),
    "default_shipping_address": gettext_lazy("Default shipping address"),
    "note": gettext_lazy("Note"),
    "address": gettext_lazy("Address"),
    "name": gettext_lazy("Name"),
    "company": gettext_lazy("Company"),
    "line1": gettext_lazy("Address line 1"),
    "line2": gettext_lazy("Address line 2"),
    "postal_code": gettext_lazy("Postal code"),
    "city": gettext_lazy("City"),
    "region": gettext_lazy("Region"),
    "country": gettext_lazy("Country"),
    "language": gettext_lazy("Language"),
    "external_id": gettext_lazy("Shop's customer ID"),
    "title": gettext_lazy("Title"),
    "outcome": gettext_lazy("Outcome"),
}
ACTION_LABELS = {
    "contact_update": gettext_lazy("Contact changed"),
    "address_create": gettext_lazy("Address added"),
    "address_update": gettext_lazy("Address corrected"),
    "default_addresses": gettext_lazy("Default addresses changed"),
    "note_save": gettext_lazy("Note saved"),
    "sign_up": gettext_lazy("Account created"),
    "customer_update": gettext_lazy("Details changed"),
    "address_delete": gettext_lazy("Address removed"),
    "push_test": gettext_lazy("Test notification sent"),
}

EDIT_PERMISSIONS = {
    "contact": "clients.change_customer",
    "addresses": "clients.change_address",
    "defaults": "clients.change_customer",
    "note": "clients.add_note",
}


def _is_htmx(request) -> bool:
    return request.headers.get("HX-Request") == "true"


def _change_rows(changes: dict) -> list[tuple[str, object, object]]:
    """(label, before, after) for each field of an audit entry or a conflict."""
    rows = []
    for name, pair in changes.items():
        before, after = pair if isinstance(pair, list | tuple) and len(pair) == 2 else ("", pair)
        rows.append((FIELD_LABELS.get(name, name.replace("_", " ").capitalize()), before, after))
    return rows


def _paginate(request, queryset, *, count: int, param: str, per_page: int) -> tuple[Page, dict]:
    """One page of `queryset` chosen by the query parameter `param`, with links that keep
    the page's other parameters (the page has several independent lists).

    `count` is the number of rows of `queryset`, read with the customer (customer_detail()),
    so that paginating costs no COUNT query.
    """
    page = KnownCountPaginator(queryset, per_page, count=count).get_page(request.GET.get(param))

    def link(number: int) -> str:
        params = request.GET.copy()
        params[param] = number
        return "?" + params.urlencode()

    links = {
        "previous": link(page.previous_page_number()) if page.has_previous() else "",
        "next": link(page.next_page_number()) if page.has_next() else "",
    }
    return page, links


def order_history_rows(orders) -> list[str]:
    """The order history's rows as HTML, rendered in one pass (as the lists' rows: the
    template language spent about 150 µs per row on five cells)."""
    url = url_pattern("orders:order-detail")
    statuses = {value: str(label) for value, label in OrderStatus.choices}
    refunded = gettext("refunded %(amount)s")
    # Each cell names its column: on a phone the rows are shown as stacked cells (app.css).
    date_l, number_l, amount_l, source_l, status_l = (
        escape(gettext(label))
        for label in ("Date", "Number", "Amount", "Source / medium", "Status")
    )
    rows = []
    for order in orders:
        amount = escape(money(order.total, order.currency))
        if order.refunded_amount:
            amount += (
                f'<span class="sub">'
                f"{escape(refunded % {'amount': money(order.refunded_amount, order.currency)})}"
                "</span>"
            )
        status = escape(order.status)
        rows.append(
            mark_safe(
                f'<tr><td class="nowrap" data-label="{date_l}">'
                f"{date_format(localtime(order.placed_at), 'SHORT_DATETIME_FORMAT')}</td>"
                f'<td data-label="{number_l}">'
                f'<a href="{escape(url.format(quote(order.number, safe="")))}">'
                f"{escape(order.number)}</a></td>"
                f'<td class="num" data-label="{amount_l}">{amount}</td>'
                f'<td data-label="{source_l}">'
                f"{escape(order.source or '—')} / {escape(order.medium or '—')}</td>"
                f'<td data-label="{status_l}"><span class="badge badge-{status}">'
                f"{escape(statuses.get(order.status, order.status))}</span></td></tr>"
            )
        )
    return rows


@dataclass(frozen=True)
class ChartBar:
    x: float
    cx: float
    y: float
    width: float
    height: float
    month: date
    value: Decimal
    text: str
    text_y: float
    money: str
    month_label: str
    month_name: str
    # Written under the first month and under each January.
    year_label: str


@functools.lru_cache(maxsize=512)
def _month_labels(language: str | None, month: date) -> tuple[str, str]:
    """A month's short label and full name in `language` (formatting dates per bar cost more
    than drawing the chart)."""
    with translation.override(language):
        return date_format(month, "N"), date_format(month, "F Y")


def spend_chart(months: list[tuple[date, Decimal]]) -> dict:
    """Geometry of the spend-per-month bar chart, drawn as SVG by the template.

    Every bar carries its amount as text, so the chart reads without hovering.
    """
    width, height, top, bottom = 1000, 230, 26, 40
    slot = width / len(months)
    peak = max((value for _, value in months), default=Decimal(0))
    plot = height - top - bottom
    bars = []
    for index, (month, value) in enumerate(months):
        bar_height = float(value / peak) * plot if peak > 0 and value > 0 else 0
        y = top + plot - bar_height
        bars.append(
            ChartBar(
                x=round(index * slot + slot * 0.15, 1),
                cx=round(index * slot + slot / 2, 1),
                y=round(y, 1),
                width=round(slot * 0.7, 1),
                height=round(bar_height, 1),
                month=month,
                value=value,
                # Rounded, not cut: number_format drops the decimals (€64.70 would read 64).
                text=number_format(
                    value.quantize(Decimal(1), rounding=ROUND_HALF_UP),
                    decimal_pos=0,
                    use_l10n=True,
                    force_grouping=True,
                ),
                text_y=round(y - 6, 1),
                money=money(value),
                month_label=_month_labels(get_language(), month)[0],
                month_name=_month_labels(get_language(), month)[1],
                year_label=str(month.year) if index == 0 or month.month == 1 else "",
            )
        )
    return {
        "bars": bars,
        "width": width,
        "height": height,
        "baseline": top + plot,
        "label_y": height - bottom + 18,
        "year_y": height - bottom + 34,
        "slot": slot,
        "has_spend": peak > 0,
        "total": sum((value for _, value in months), Decimal(0)),
    }


def _frequency_text(days: float | None) -> str:
    if days is None:
        return "—"
    if days < 0.5:
        return gettext("several times a day")
    rounded = round(days)
    return ngettext("every day", "every %(days)d days", rounded) % {"days": rounded}


def _can_edit(user) -> dict[str, bool]:
    return {section: user.has_perm(perm) for section, perm in EDIT_PERMISSIONS.items()}


def note_context(request, customer: Customer) -> dict:
    versions, links = _paginate(
        request,
        note_versions(customer_id=customer.pk),
        count=customer.note_rows,
        param="notes",
        per_page=NOTES_PER_PAGE,
    )
    # Earlier versions are listed on request only (their page is read lazily, if shown).
    return {
        "note": current_note(customer),
        "note_versions": versions,
        "note_links": links,
        "show_versions": "notes" in request.GET,
    }


def history_context(request, customer: Customer) -> dict:
    page, links = _paginate(
        request,
        audit_entries(customer_id=customer.pk),
        count=customer.audit_rows,
        param="history",
        per_page=HISTORY_PER_PAGE,
    )
    entries = [
        {
            "at": entry.at,
            "actor": entry.actor,
            # Changes the customer made in the shop (through the API), told apart from staff's.
            "by_customer": entry.origin == AuditOrigin.CUSTOMER,
            "action": ACTION_LABELS.get(entry.action, entry.action.replace("_", " ").capitalize()),
            "changes": _change_rows(entry.changes if isinstance(entry.changes, dict) else {}),
        }
        for entry in page.object_list
    ]
    return {"history": page, "history_entries": entries, "history_links": links}


def client_page_context(request, customer: Customer, **extra) -> dict:
    """Everything the client page shows, in a fixed number of queries."""
    summary = customer_purchase_summary(customer)
    orders, order_links = _paginate(
        request,
        customer_orders(customer_id=customer.pk),
        count=customer.order_rows,
        param="page",
        per_page=ORDERS_PER_PAGE,
    )
    context = {
        "customer": customer,
        "addresses": customer_addresses(customer_id=customer.pk) if customer.address_rows else [],
        "summary": summary,
        "frequency": _frequency_text(summary.days_between_orders),
        "chart": spend_chart(
            customer_monthly_spend(customer_id=customer.pk, last_order_at=customer.last_order_at)
        ),
        "orders": orders,
        "order_rows": order_history_rows(orders),
        "order_links": order_links,
        "origin": customer_origin(customer_id=customer.pk, launch_rows=customer.launch_rows),
        "can_edit": _can_edit(request.user),
        **note_context(request, customer),
        **history_context(request, customer),
    }
    context.update(extra)
    return context


class ClientDetailView(PermissionRequiredMixin, View):
    permission_required = "clients.view_customer"

    def get(self, request, pk: int):
        customer = get_object_or_404(customer_detail(), pk=pk)
        return _render(request, TEMPLATE, client_page_context(request, customer))


def _render(request, template: str, context: dict, status: int = 200) -> HttpResponse:
    return HttpResponse(render_to_string(template, context, request), status=status)


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
        self.customer = get_object_or_404(customer_detail(), pk=self.kwargs["pk"])

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
        if not _is_htmx(request):
            messages.success(request, self.success_message)
            return redirect(self.customer.get_absolute_url() + f"#{self.section_anchor()}")
        self.load()
        return self.render_card(None, editing=False, saved=self.success_message)

    def section_anchor(self) -> str:
        return self.section

    def conflict_context(self, conflict: Conflict) -> dict:
        return {"rows": _change_rows(conflict.changes), "by": conflict.by, "at": conflict.at}

    def card_context(self) -> dict:
        return {}

    def render_card(self, form, *, editing: bool, status: int = 200, **extra) -> HttpResponse:
        context = {
            "editing": self.section if editing else "",
            "form": form,
            **extra,
        }
        if not _is_htmx(self.request):
            page = client_page_context(self.request, self.customer, **context)
            return _render(self.request, TEMPLATE, page, status=status)
        context.update(
            customer=self.customer, can_edit=_can_edit(self.request.user), **self.card_context()
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
        address_set_default(
            customer=self.customer,
            actor=self.request.user,
            version=data["version"],
            base=data["base"],
            billing=data["billing"],
            shipping=data["shipping"],
        )

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
        address_update(
            address=self.address, actor=self.request.user, version=version, base=base, **data
        )

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
