"""The client page as staff and viewers use it: /clients/<id>/ and its inline editors."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from clients.models import Address, AuditEntry, Customer, Note
from clients.selectors import client_page_customer, customer_detail, with_default_addresses
from clients.services import address_create, note_save
from orders.models import OrderStatus
from tags.services import customer_set_tags
from tests.factories import AddressFactory, CustomerFactory, UserFactory, make_order

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def page_url(customer) -> str:
    return reverse("clients:client-detail", args=[customer.pk])


def contact_url(customer) -> str:
    return reverse("clients:contact-update", args=[customer.pk])


def note_url(customer) -> str:
    return reverse("clients:note-update", args=[customer.pk])


def defaults_url(customer) -> str:
    return reverse("clients:default-addresses-update", args=[customer.pk])


def address_url(address) -> str:
    return reverse("clients:address-update", args=[address.customer_id, address.pk])


def hidden_fields(html: str) -> dict[str, str]:
    """The hidden inputs of the form a page shows, as a browser would post them back."""
    return dict(
        re.findall(r'<input type="hidden" name="(version|base|based_on)" value="([^"]*)"', html)
    )


def card(html: str, card_id: str) -> str:
    """The HTML of one card of the page."""
    start = html.index(f'<section class="card" id="{card_id}"')
    return html[start : html.index("</section>", start)]


def add_address(customer, **fields):
    values = {"name": "Ada Lovelace", "line1": "1 rue de la Paix", "postal_code": "75002"}
    values.update({"city": "Paris", "country": "FR", **fields})
    return address_create(customer=customer, **values)


@pytest.fixture
def customer():
    return CustomerFactory(first_name="Ada", last_name="Lovelace", phone="+33 6 11 22 33 44")


# --- Reading the page -------------------------------------------------------------------------


def test_client_page_shows_header_contact_statistics_and_orders(staff_client, customer):
    start = timezone.now() - timedelta(days=40)
    make_order(customer, total="100.00", placed_at=start)
    make_order(customer, total="50.00", placed_at=start + timedelta(days=10))
    make_order(customer, total="30.00", placed_at=start + timedelta(days=20))
    make_order(customer, status=OrderStatus.CANCELLED, total="999.00")
    response = staff_client.get(page_url(customer))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Ada Lovelace" in html and customer.email in html
    assert f"Client ID <strong>{customer.pk}</strong>" in html
    assert 'class="badge badge-client">Client<' in html
    assert "Push not accepted" in html
    stats = response.context["summary"]
    assert stats.orders_count == 3
    assert stats.total_spent == Decimal("180.00")
    assert stats.average_cart == Decimal("60.00")
    assert "every 10 days" in html
    assert "€180.00" in html and "€60.00" in html
    # All four orders are in the history, cancelled included.
    assert "4 orders, every status" in html
    assert html.count('href="/orders/T') == 4


def test_a_lead_gets_friendly_empty_states(staff_client):
    lead = CustomerFactory(push_opt_in=True)
    html = staff_client.get(page_url(lead)).content.decode()
    assert 'class="badge badge-lead">Lead<' in html
    assert "Push accepted" in html
    assert "No orders yet." in html
    assert "No purchases in the last 12 months." in html
    assert "This lead has not bought anything yet." in html
    assert "No address yet" in html
    assert "No note yet." in html
    assert "No change recorded yet." in html


def test_purchase_frequency_needs_two_orders(staff_client, customer):
    make_order(customer, total="10.00")
    response = staff_client.get(page_url(customer))
    assert response.context["frequency"] == "—"


def test_the_chart_writes_each_months_spend_as_text(staff_client, customer):
    make_order(customer, total="1234.00")
    make_order(customer, total="100.00", refunded="34.00")
    html = staff_client.get(page_url(customer)).content.decode()
    svg = html[html.index('<svg class="chart-svg"') : html.index("</svg>", html.index("chart-svg"))]
    # Net of the refund, without hovering: the amount is written next to the bar.
    assert '<text class="chart-value"' in svg and ">1,300<" in svg
    assert svg.count('class="chart-month"') == 12
    assert "<script" not in svg


def test_order_history_is_newest_first_twenty_per_page(staff_client, customer):
    start = timezone.now() - timedelta(days=100)
    numbers = [
        make_order(customer, placed_at=start + timedelta(days=i), number=f"N{i:03d}").number
        for i in range(25)
    ]
    first = staff_client.get(page_url(customer))
    shown = [order.number for order in first.context["orders"]]
    assert shown == list(reversed(numbers))[:20]
    assert 'href="/orders/N024/"' in first.content.decode()
    second = staff_client.get(page_url(customer), {"page": 2})
    assert [order.number for order in second.context["orders"]] == list(reversed(numbers))[20:]
    # A page number that makes no sense shows a real page rather than an error.
    assert staff_client.get(page_url(customer), {"page": "abc"}).status_code == 200
    assert staff_client.get(page_url(customer), {"page": "999"}).context["orders"].number == 2


def test_unknown_client_gets_the_back_office_404(staff_client):
    response = staff_client.get("/clients/987654/")
    assert response.status_code == 404
    assert "404.html" in [t.name for t in response.templates]
    assert "Back to the clients" in response.content.decode()
    assert staff_client.get("/clients/987654/contact/").status_code == 404


def test_the_page_needs_a_login(customer):
    response = Client().get(page_url(customer))
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_query_count_does_not_grow_with_orders_addresses_notes_or_history(staff_client, customer):
    staff = UserFactory(role="Staff")

    def fill(n):
        for i in range(n):
            add_address(customer, actor=staff, name=f"Address {i}")
            make_order(customer, total="20.00", placed_at=timezone.now() - timedelta(days=i * 20))
            make_order(customer, status=OrderStatus.PENDING)
            latest = Note.objects.filter(customer=customer).order_by("-created_at", "-id").first()
            note_save(
                customer=customer,
                actor=staff,
                text=f"note {i}",
                based_on=getattr(latest, "pk", None),
            )

    def count(**params) -> int:
        with CaptureQueriesContext(connection) as queries:
            assert staff_client.get(page_url(customer), params).status_code == 200
        return len(queries)

    later_pages = {"page": 2, "notes": 2, "history": 2}
    # Two of each, so that every list of the page is already shown.
    fill(2)
    # (The permission names are read once per process, by its first request: not counted.)
    staff_client.get(page_url(customer))
    small, small_later = count(), count(**later_pages)
    fill(15)
    assert AuditEntry.objects.filter(customer=customer).count() > 25
    assert count() == small
    assert count(**later_pages) == small_later
    assert count(notes=1) == small_later  # the note's versions, when shown, cost one query
    # Session, user, permissions (one query; two with Django's ModelBackend), the customer
    # with its counts and current note, addresses, monthly spend, the change history's page
    # and the order history's page; the access log's entry (privacy/). The privacy card's
    # consent history and planned erasure are read only for a customer who has them.
    assert small <= (10 if settings.STOCK_DJANGO else 9)
    assert small_later == small + 1


def test_the_page_reads_the_customer_as_customer_detail_does(customer):
    """client_page_customer() (SQL compiled once, raw()) gives the customer as the ORM's
    customer_detail() does: every field and annotation; the default addresses come from the
    address book without a query; no customer for an unknown or impossible id."""
    staff = UserFactory(role="Staff")
    billing = add_address(customer, actor=staff, name="Billing")
    shipping = add_address(customer, actor=staff, name="Shipping")
    Customer.objects.filter(pk=customer.pk).update(
        default_billing_address=billing, default_shipping_address=shipping
    )
    note_save(customer=customer, actor=staff, text="<b>call back</b>", based_on=None)
    make_order(customer)
    customer_set_tags(customer=customer, actor=staff, names=["vip", "b2b"])
    expected = customer_detail().get(pk=customer.pk)
    read = client_page_customer(customer.pk)
    names = [field.attname for field in Customer._meta.concrete_fields]
    names += list(customer_detail().query.annotations)
    assert {name: getattr(read, name) for name in names} == {
        name: getattr(expected, name) for name in names
    }
    assert read.address_rows == 2 and read.note_rows == 1 and read.order_rows == 1
    with CaptureQueriesContext(connection) as queries:
        with_default_addresses(read, [shipping, billing])
        assert read.default_billing_address is billing
        assert read.default_shipping_address is shipping
    assert len(queries) == 0
    assert client_page_customer(customer.pk + 1000) is None
    assert client_page_customer(2**63) is None and client_page_customer(0) is None


# --- Permissions --------------------------------------------------------------------------------


def test_viewer_sees_the_page_without_any_edit_control(viewer_client, customer):
    address = add_address(customer)
    note_save(customer=customer, actor=None, text="VIP", based_on=None)
    html = viewer_client.get(page_url(customer)).content.decode()
    assert "Ada Lovelace" in html and "VIP" in html
    for url in (
        contact_url(customer),
        note_url(customer),
        defaults_url(customer),
        address_url(address),
    ):
        assert url not in html
    assert "Edit contact" not in html and "Change default address" not in html
    assert "<form" not in html.split('id="main"')[1]


def test_viewer_gets_403_on_every_edit(viewer_client, customer):
    address = add_address(customer)
    posts = {
        contact_url(customer): {"first_name": "Eve", "version": 1},
        note_url(customer): {"text": "hacked"},
        defaults_url(customer): {"billing": address.pk, "shipping": address.pk},
        address_url(address): {"name": "Eve", "line1": "x", "postal_code": "1", "city": "x"},
    }
    for url, data in posts.items():
        assert viewer_client.post(url, data).status_code == 403
        assert viewer_client.post(url, data, **HTMX).status_code == 403
        assert viewer_client.get(url).status_code == 403
    customer.refresh_from_db()
    assert customer.first_name == "Ada"
    assert not Note.objects.exists()
    assert not AuditEntry.objects.exclude(action="address_create").exists()


def test_a_user_without_a_role_cannot_read_the_page(customer):
    client = Client()
    client.force_login(UserFactory())
    assert client.get(page_url(customer)).status_code == 403


# --- Contact ------------------------------------------------------------------------------------


def test_staff_edits_the_contact_without_javascript(staff_client, customer):
    form = staff_client.get(contact_url(customer))
    assert form.status_code == 200
    html = form.content.decode()
    assert 'name="email"' in html and "disabled" in html  # shown, not editable
    data = {
        **hidden_fields(html),
        "first_name": "Augusta",
        "last_name": "King",
        "phone": "+442079460018",  # stored in the international format
    }
    response = staff_client.post(contact_url(customer), data)
    assert response.status_code == 302 and response["Location"].endswith("#contact")
    customer.refresh_from_db()
    assert (customer.first_name, customer.last_name, customer.phone) == (
        "Augusta",
        "King",
        "+44 20 7946 0018",
    )
    assert customer.version == 2
    assert "augusta king" in customer.search_text
    entry = AuditEntry.objects.get(customer=customer, action="contact_update")
    assert entry.changes == {
        "first_name": ["Ada", "Augusta"],
        "last_name": ["Lovelace", "King"],
        "phone": ["+33 6 11 22 33 44", "+44 20 7946 0018"],
    }
    page = staff_client.get(response["Location"]).content.decode()
    assert "Contact saved." in page
    assert "Contact changed" in page and "Lovelace" in page and "King" in page


def test_staff_edits_the_contact_inline_with_htmx(staff_client, customer):
    html = staff_client.get(contact_url(customer), **HTMX).content.decode()
    assert html.lstrip().startswith('<section class="card" id="contact"')
    assert "<html" not in html
    data = {**hidden_fields(html), "first_name": "Augusta", "last_name": "Lovelace", "phone": ""}
    response = staff_client.post(contact_url(customer), data, **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Contact saved." in html and "<dd>Augusta</dd>" in html
    # The header and the change history are refreshed out of band.
    assert 'id="client-header" hx-swap-oob="true"' in html
    assert 'id="history" aria-labelledby="history-title" hx-swap-oob="true"' in html
    assert "Contact changed" in html


def test_the_email_cannot_be_changed_even_by_a_forged_post(staff_client, customer):
    original = customer.email
    fields = hidden_fields(staff_client.get(contact_url(customer)).content.decode())
    forged = {**fields, "email": "attacker@example.com", "first_name": "Ada", "last_name": "L."}
    staff_client.post(contact_url(customer), forged)
    staff_client.post(contact_url(customer), {**forged, "version": 2}, **HTMX)
    customer.refresh_from_db()
    assert customer.email == original
    assert customer.last_name == "L."  # the rest of the form was saved
    assert "attacker" not in customer.search_text
    assert not any("email" in e.changes for e in AuditEntry.objects.filter(customer=customer))


@pytest.mark.parametrize(
    "changes, error",
    [
        ({"phone": "call me"}, "Enter a phone number"),
        ({"first_name": "x" * 151}, "at most 150 characters"),
        ({"first_name": "", "last_name": ""}, "Enter a first name or a last name."),
        ({"last_name": "Love\x00lace"}, "control characters"),
        ({"base": "forged"}, "damaged or out of date"),
        ({"version": "abc"}, "damaged or out of date"),
        ({"version": ""}, "damaged or out of date"),
    ],
)
def test_invalid_contact_input_shows_errors_and_saves_nothing(
    staff_client, customer, changes, error
):
    fields = hidden_fields(staff_client.get(contact_url(customer)).content.decode())
    data = {**fields, "first_name": "Augusta", "last_name": "King", "phone": "", **changes}
    for extra in ({}, HTMX):
        response = staff_client.post(contact_url(customer), data, **extra)
        assert response.status_code == 200
        assert error in response.content.decode()
    customer.refresh_from_db()
    assert (customer.first_name, customer.last_name, customer.version) == ("Ada", "Lovelace", 1)
    assert not AuditEntry.objects.exists()


def test_two_people_saving_the_contact_the_second_is_refused(customer):
    alice, bob = Client(), Client()
    alice.force_login(UserFactory(username="alice", role="Staff"))
    bob.force_login(UserFactory(username="bob", role="Staff"))
    alice_form = hidden_fields(alice.get(contact_url(customer)).content.decode())
    bob_form = hidden_fields(bob.get(contact_url(customer)).content.decode())

    bob.post(
        contact_url(customer), {**bob_form, "first_name": "Ada", "last_name": "Byron", "phone": ""}
    )
    response = alice.post(
        contact_url(customer), {**alice_form, "first_name": "Ada", "last_name": "King", "phone": ""}
    )
    assert response.status_code == 409
    html = response.content.decode()
    assert "Not saved:" in html and "bob saved a change" in html
    assert "<del>Lovelace</del> → <ins>Byron</ins>" in html
    assert "<del>+33 6 11 22 33 44</del> → <ins>(empty)</ins>" in html
    customer.refresh_from_db()
    assert customer.last_name == "Byron"  # nothing was overwritten
    # Alice's typing is kept; saving again, now knowing what bob did, is deliberate.
    assert 'name="last_name" value="King"' in html
    retry = hidden_fields(html)
    assert retry["version"] == "2"
    response = alice.post(
        contact_url(customer), {**retry, "first_name": "Ada", "last_name": "King", "phone": ""}
    )
    assert response.status_code == 302
    customer.refresh_from_db()
    assert customer.last_name == "King" and customer.version == 3


def test_a_stale_contact_form_is_not_refused_for_an_unrelated_change(staff_client, customer):
    address = add_address(customer)
    other = add_address(customer, name="Work")
    contact = hidden_fields(staff_client.get(contact_url(customer)).content.decode())
    defaults = hidden_fields(staff_client.get(defaults_url(customer)).content.decode())
    staff_client.post(
        defaults_url(customer), {**defaults, "billing": other.pk, "shipping": address.pk}
    )
    customer.refresh_from_db()
    assert customer.version == 2
    response = staff_client.post(
        contact_url(customer), {**contact, "first_name": "Ada", "last_name": "King", "phone": ""}
    )
    assert response.status_code == 302
    customer.refresh_from_db()
    assert customer.last_name == "King" and customer.default_billing_address_id == other.pk


def test_a_conflicting_htmx_save_is_shown_in_the_card(staff_client, customer):
    stale = hidden_fields(staff_client.get(contact_url(customer)).content.decode())
    Customer.objects.filter(pk=customer.pk).update(first_name="Bea", version=2)
    response = staff_client.post(
        contact_url(customer), {**stale, "first_name": "Cy", "last_name": "L", "phone": ""}, **HTMX
    )
    assert response.status_code == 200  # htmx only swaps successful responses
    html = response.content.decode()
    assert html.lstrip().startswith('<section class="card" id="contact"')
    assert "<del>Ada</del> → <ins>Bea</ins>" in html
    customer.refresh_from_db()
    assert customer.first_name == "Bea"


# --- Addresses ----------------------------------------------------------------------------------


def test_staff_changes_the_default_billing_and_shipping_addresses(staff_client, customer):
    home = add_address(customer, name="Home")
    work = add_address(customer, name="Work", city="Berlin", country="DE")
    html = staff_client.get(defaults_url(customer)).content.decode()
    assert 'name="billing"' in html and 'name="shipping"' in html
    response = staff_client.post(
        defaults_url(customer), {**hidden_fields(html), "billing": work.pk, "shipping": home.pk}
    )
    assert response.status_code == 302
    customer.refresh_from_db()
    assert customer.default_billing_address_id == work.pk
    assert customer.default_shipping_address_id == home.pk
    assert customer.country == "DE"
    entry = AuditEntry.objects.get(customer=customer, action="default_addresses")
    assert entry.changes == {"default_billing_address": [str(home), str(work)]}


def test_another_customers_address_cannot_become_a_default(staff_client, customer):
    home = add_address(customer)
    foreign = AddressFactory()
    fields = hidden_fields(staff_client.get(defaults_url(customer)).content.decode())
    response = staff_client.post(
        defaults_url(customer), {**fields, "billing": foreign.pk, "shipping": home.pk}
    )
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    customer.refresh_from_db()
    assert customer.default_billing_address_id == home.pk and customer.version == 1


def test_staff_corrects_an_address_and_orders_keep_their_copy(staff_client, customer):
    address = add_address(customer, city="Pariss")
    order = make_order(customer)
    html = staff_client.get(address_url(address)).content.decode()
    assert 'value="Pariss"' in html
    data = {**hidden_fields(html), "name": "Ada Lovelace", "line1": "1 rue de la Paix"}
    data.update(postal_code="75002", city="Paris", country="be", phone="")
    response = staff_client.post(address_url(address), data, **HTMX)
    assert response.status_code == 200
    assert "Address saved." in response.content.decode()
    address.refresh_from_db()
    customer.refresh_from_db()
    order.refresh_from_db()
    assert (address.city, address.country, address.version) == ("Paris", "BE", 2)
    assert customer.country == "BE"  # the default billing address's country, kept in sync
    assert order.billing_address["city"] == "Pariss"
    entry = AuditEntry.objects.get(action="address_update")
    assert entry.changes["city"] == ["Pariss", "Paris"]


def test_invalid_address_saves_nothing(staff_client, customer):
    address = add_address(customer)
    fields = hidden_fields(staff_client.get(address_url(address)).content.decode())
    data = {
        **fields,
        "name": "",
        "line1": "x",
        "postal_code": "1",
        "city": "x",
        "country": "France",
    }
    html = staff_client.post(address_url(address), data).content.decode()
    assert (
        "This field is required." in html and "Ensure this value has at most 2 characters" in html
    )
    address.refresh_from_db()
    assert address.name == "Ada Lovelace" and address.version == 1


def test_an_address_of_another_customer_is_not_found_through_this_one(staff_client, customer):
    foreign = AddressFactory()
    url = reverse("clients:address-update", args=[customer.pk, foreign.pk])
    assert staff_client.get(url).status_code == 404
    assert staff_client.post(url, {"name": "x"}).status_code == 404


def test_an_address_the_customer_removes_while_staff_saves_it_is_not_found(
    staff_client, customer, monkeypatch
):
    """The customer removes the address (storefront API) after the save found it and before
    it locks it: a 404 as if it had been gone already, not a 500, and nothing written."""
    from clients.views import client_editors

    address = add_address(customer)
    form = hidden_fields(staff_client.get(address_url(address)).content.decode())
    real_load = client_editors.AddressEditView.load

    def load_then_removed(view):
        real_load(view)
        Address.objects.filter(pk=address.pk).delete()

    monkeypatch.setattr(client_editors.AddressEditView, "load", load_then_removed)
    history = AuditEntry.objects.filter(customer=customer).count()
    data = {**form, "name": "Ada", "line1": "1 rue de la Paix", "postal_code": "75002"}
    response = staff_client.post(address_url(address), {**data, "city": "Lyon", "country": "FR"})
    assert response.status_code == 404
    assert AuditEntry.objects.filter(customer=customer).count() == history


def test_a_default_address_the_customer_removes_while_staff_chooses_it_is_not_found(
    staff_client, customer, monkeypatch
):
    """Chosen (the form found it), then removed by the customer before the save locks the
    customer: a 404, the defaults as they were (it failed at the commit, on a foreign key: a
    500)."""
    from clients.views import client_editors

    kept, chosen = add_address(customer), add_address(customer, city="Nice")
    Customer.objects.filter(pk=customer.pk).update(
        default_billing_address=kept, default_shipping_address=kept
    )
    form = hidden_fields(staff_client.get(defaults_url(customer)).content.decode())
    real_save = client_editors.address_set_default

    def removed_then_saved(**kwargs):
        Address.objects.filter(pk=chosen.pk).delete()
        return real_save(**kwargs)

    monkeypatch.setattr(client_editors, "address_set_default", removed_then_saved)
    response = staff_client.post(
        defaults_url(customer), {**form, "billing": chosen.pk, "shipping": kept.pk}
    )
    assert response.status_code == 404
    customer.refresh_from_db()
    assert customer.default_billing_address_id == kept.pk


def test_two_people_correcting_the_same_address(staff_client, customer):
    address = add_address(customer)
    stale = hidden_fields(staff_client.get(address_url(address)).content.decode())
    data = {
        "name": "Ada Lovelace",
        "line1": "1 rue de la Paix",
        "postal_code": "75002",
        "country": "FR",
    }
    first = staff_client.post(address_url(address), {**stale, **data, "city": "Lyon"})
    assert first.status_code == 302
    second = staff_client.post(address_url(address), {**stale, **data, "city": "Nice"})
    assert second.status_code == 409
    assert "<del>Paris</del> → <ins>Lyon</ins>" in second.content.decode()
    address.refresh_from_db()
    assert address.city == "Lyon"


# --- Note ---------------------------------------------------------------------------------------


def test_note_is_saved_with_author_and_earlier_versions_stay_readable(staff_client, customer):
    html = staff_client.get(note_url(customer)).content.decode()
    staff_client.post(note_url(customer), {**hidden_fields(html), "text": "Prefers email."})
    html = staff_client.get(note_url(customer)).content.decode()
    staff_client.post(note_url(customer), {**hidden_fields(html), "text": "Prefers phone calls."})
    notes = list(Note.objects.filter(customer=customer).order_by("created_at", "id"))
    assert [n.text for n in notes] == ["Prefers email.", "Prefers phone calls."]
    assert all(n.author is not None for n in notes)
    note = card(staff_client.get(page_url(customer)).content.decode(), "note")
    assert "Prefers phone calls." in note and "Prefers email." not in note
    assert f"By {notes[1].author.username}" in note
    assert "Show all 2 versions" in note
    note = card(staff_client.get(page_url(customer), {"notes": 1}).content.decode(), "note")
    assert "All versions (2)" in note and "Prefers email." in note
    assert AuditEntry.objects.filter(action="note_save").count() == 2


def test_note_text_is_always_escaped(staff_client, customer):
    html = staff_client.get(note_url(customer)).content.decode()
    payload = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    staff_client.post(note_url(customer), {**hidden_fields(html), "text": payload})
    html = staff_client.get(note_url(customer)).content.decode()
    staff_client.post(note_url(customer), {**hidden_fields(html), "text": "second"})
    page = staff_client.get(page_url(customer), {"notes": 1}).content.decode()
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page


def test_two_people_writing_the_note_the_second_is_refused(customer):
    alice, bob = Client(), Client()
    alice.force_login(UserFactory(username="alice", role="Staff"))
    bob.force_login(UserFactory(username="bob", role="Staff"))
    alice_form = hidden_fields(alice.get(note_url(customer)).content.decode())
    bob_form = hidden_fields(bob.get(note_url(customer)).content.decode())
    assert bob.post(note_url(customer), {**bob_form, "text": "Bob's note"}).status_code == 302
    response = alice.post(note_url(customer), {**alice_form, "text": "Alice's note"})
    assert response.status_code == 409
    html = response.content.decode()
    assert "bob saved a change" in html and "<ins>Bob&#x27;s note</ins>" in html
    assert Note.objects.get(customer=customer).text == "Bob's note"
    retry = hidden_fields(html)
    assert alice.post(note_url(customer), {**retry, "text": "Alice's note"}).status_code == 302
    assert Note.objects.filter(customer=customer).count() == 2


def test_an_over_long_note_is_refused(staff_client, customer):
    response = staff_client.post(note_url(customer), {"text": "x" * 10_001, "based_on": ""})
    assert "at most 10000 characters" in response.content.decode()
    assert not Note.objects.exists()


def test_change_history_lists_who_changed_what(staff_client, customer):
    staff_user = UserFactory(username="carol", role="Staff")
    add_address(customer)
    note_save(customer=customer, actor=staff_user, text="Hello", based_on=None)
    page = staff_client.get(page_url(customer)).content.decode()
    history = page[page.index('id="history"') :]
    assert "carol" in history and "Note saved" in history
    assert "<del>(empty)</del> → <ins>Hello</ins>" in history


# templates/clients/client_detail.html's chart loops before clients/presenters.py wrote them.
CHART_REFERENCE = """{% load l10n %}{% localize off %}{% for bar in chart.bars %}
      {% if bar.height %}<rect class="chart-bar" x="{{ bar.x }}" y="{{ bar.y }}" width="{{ bar.width }}" height="{{ bar.height }}"></rect>{% endif %}
      <text class="chart-value{% if not bar.height %} chart-zero{% endif %}" x="{{ bar.cx }}" y="{{ bar.text_y }}" text-anchor="middle">{{ bar.text }}</text>
      <text class="chart-month" x="{{ bar.cx }}" y="{{ chart.label_y }}" text-anchor="middle">{{ bar.month_label }}</text>
      {% if bar.year_label %}<text class="chart-year" x="{{ bar.cx }}" y="{{ chart.year_y }}" text-anchor="middle">{{ bar.year_label }}</text>{% endif %}
      {% endfor %}{% endlocalize %}|{% for bar in chart.bars %}<tr><td>{{ bar.month_name }}</td><td>{{ bar.money }}</td></tr>{% endfor %}"""  # noqa: E501


@pytest.mark.parametrize("language", ["en", "fr"])
def test_the_chart_is_the_markup_its_template_loops_wrote(language):
    """The chart's bars and table rows, written in Python, are the former loops' markup
    character for character: zero and tiny months, amounts with groups and cents, a new year."""
    from datetime import date
    from decimal import Decimal

    from django.template import engines
    from django.utils import translation

    from clients.presenters import spend_chart

    values = ["0", "0.4", "12345.67", "64.70", "0", "999999.99", "1", "3.5", "0", "250", "7", "0"]
    months = [
        (date(2025 + (2 + m) // 12, (2 + m) % 12 + 1, 1), Decimal(v)) for m, v in enumerate(values)
    ]
    with translation.override(language):
        chart = spend_chart(months)
        expected = engines["django"].from_string(CHART_REFERENCE).render({"chart": chart})
    assert f"{chart['bars_html']}|{chart['table_rows_html']}" == expected
    assert "chart-year" in expected and "chart-zero" in expected
    assert spend_chart([(month, Decimal(0)) for month, _ in months])["has_spend"] is False
