"""What QA found in the import: one address for a row whose billing and shipping addresses
are the same, no withdrawal of a consent never given, the admin credited for an order file,
worded reasons, a file without rows."""

import re
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from clients.models import Address, AuditAction, AuditEntry, AuditOrigin, Customer
from imports import services
from orders.services import ImportedOrder, LineInput, order_draft, order_import_check, orders_import
from privacy.models import ConsentRecord
from tests.factories import AddressFactory, CustomerFactory, UserFactory
from tests.imports.conftest import FILES, apply, check, upload
from tests.imports.test_platforms import _confirmed, _imported

pytestmark = pytest.mark.django_db

WOO = (FILES / "woocommerce_customers.csv").read_bytes().splitlines(keepends=True)[0]


def _woo(*rows: str) -> bytes:
    return WOO + "".join(row + "\n" for row in rows).encode()


def test_a_squarespace_row_with_the_same_billing_and_shipping_address_has_one_address():
    apply(check(upload("squarespace_profiles.csv")), UserFactory(role="Admin"))
    amelie = Customer.objects.get(email="amelie.poulain@example.fr")
    assert amelie.addresses.count() == 1
    assert amelie.default_billing_address_id == amelie.default_shipping_address_id
    address = amelie.default_billing_address
    assert (address.line1, address.postal_code, address.city, address.country) == (
        "15 rue des Trois Frères",
        "75018",
        "Paris",
        "FR",
    )


def test_a_woocommerce_row_with_the_same_billing_and_shipping_address_has_one_address():
    # The billing company has no shipping column to compare with; the country is written
    # "FR" on one side, "fr" on the other.
    job = check(
        upload(
            "woo.csv",
            data=_woo(
                "14,Lucie,Roy,lucie,lucie@example.fr,$P$B,2024-03-05 10:12:00,Lucie,Roy,Roy SARL,"
                "lucie@example.fr,,3 place Bellecour,,69002,Lyon,,FR,Lucie,Roy,,"
                "3 place Bellecour ,,69002,Lyon,,fr,0.00,0",
                "15,Marc,Blanc,marc,marc@example.fr,$P$B,2024-03-05 10:12:00,Marc,Blanc,,"
                "marc@example.fr,,3 place Bellecour,,69002,Lyon,,FR,Marc,Blanc,,"
                "3 place Bellecour,Bât. B,69002,Lyon,,FR,0.00,0",
            ),
        )
    )
    apply(job, UserFactory(role="Admin"))
    lucie = Customer.objects.get(email="lucie@example.fr")
    assert lucie.addresses.count() == 1
    assert lucie.default_billing_address_id == lucie.default_shipping_address_id
    assert lucie.default_billing_address.company == "Roy SARL"
    marc = Customer.objects.get(email="marc@example.fr")  # different: two addresses, as before
    assert marc.addresses.count() == 2
    assert marc.default_shipping_address.line2 == "Bât. B"
    assert marc.default_billing_address.line2 == ""


def test_an_update_with_the_same_billing_and_shipping_address_writes_one_address():
    lucie = CustomerFactory(email="lucie@example.fr", external_id="14")
    old = AddressFactory(customer=lucie, line1="1 rue Neuve", city="Lyon", country="FR")
    lucie.default_billing_address = lucie.default_shipping_address = old
    lucie.save()
    row = (
        "14,Lucie,Roy,lucie,lucie@example.fr,$P$B,2024-03-05 10:12:00,Lucie,Roy,,"
        "lucie@example.fr,,3 place Bellecour,,69002,Lyon,,FR,Lucie,Roy,,"
        "3 place Bellecour,,69002,Lyon,,FR,0.00,0"
    )
    apply(check(upload("woo.csv", data=_woo(row))), UserFactory(role="Admin"))
    lucie.refresh_from_db()
    assert Address.objects.filter(customer=lucie).count() == 2  # the old one and one new
    assert lucie.default_billing_address_id == lucie.default_shipping_address_id != old.pk
    assert lucie.default_billing_address.line1 == "3 place Bellecour"


def test_a_shipping_address_equal_to_the_stored_billing_one_is_that_address():
    lucie = CustomerFactory(email="lucie@example.fr", external_id="14")
    billing = AddressFactory(
        customer=lucie, line1="3 place Bellecour", postal_code="69002", city="Lyon", country="FR"
    )
    shipping = AddressFactory(customer=lucie, line1="1 rue Neuve", city="Lyon", country="FR")
    lucie.default_billing_address, lucie.default_shipping_address = billing, shipping
    lucie.save()
    row = (
        "14,Lucie,Roy,lucie,lucie@example.fr,$P$B,2024-03-05 10:12:00,Lucie,Roy,,"
        "lucie@example.fr,,3 place Bellecour,,69002,Lyon,,FR,Lucie,Roy,,"
        "3 place Bellecour,,69002,Lyon,,FR,0.00,0"
    )
    apply(check(upload("woo.csv", data=_woo(row))), UserFactory(role="Admin"))
    lucie.refresh_from_db()
    assert Address.objects.filter(customer=lucie).count() == 2  # nothing new
    assert lucie.default_shipping_address_id == lucie.default_billing_address_id == billing.pk


SHOPIFY = (FILES / "shopify_customers_export.csv").read_bytes().splitlines(keepends=True)[0]


def _shopify(email: str, accepts_email: str, accepts_sms: str) -> bytes:
    row = f",Ann,Bee,{email},{accepts_email},,,,,,,,,,{accepts_sms},0,0,,no,\n"
    return SHOPIFY + row.encode()


def test_a_new_customer_s_no_to_sms_is_no_withdrawal():
    apply(check(upload("shopify_customers_export.csv")), UserFactory(role="Admin"))
    amelie = Customer.objects.get(email="amelie.poulain@example.fr")  # "Accepts SMS": no
    assert amelie.sms_consent is False
    assert not ConsentRecord.objects.filter(customer=amelie, channel="sms").exists()
    assert ConsentRecord.objects.get(customer=amelie, channel="email").granted is True


def test_wix_never_subscribed_is_no_withdrawal():
    _imported("wix_contacts.csv")
    assert not ConsentRecord.objects.filter(granted=False).exists()
    zoe = Customer.objects.get(email="zoe@example.com")
    assert (zoe.email_consent, zoe.sms_consent) == (False, False)


def test_a_no_from_a_customer_without_consent_nor_record_changes_nothing():
    CustomerFactory(email="ann@example.com", first_name="Ann", last_name="Bee")
    job = check(upload("s.csv", data=_shopify("ann@example.com", "no", "no")))
    assert job.counts == {"unchanged": 1}
    apply(job, UserFactory(role="Admin"))
    assert not ConsentRecord.objects.exists()


def test_a_no_from_a_customer_whose_consent_is_given_is_a_withdrawal():
    # Given with a record (the ledger says so), or without one (the customer's state does).
    ann = CustomerFactory(email="ann@example.com", first_name="Ann", last_name="Bee")
    ConsentRecord.objects.create(
        customer=ann, channel="email", granted=True, at=timezone.now(), source="import"
    )
    ann.email_consent = True
    ann.sms_consent = True
    ann.save()
    job = check(upload("s.csv", data=_shopify("ann@example.com", "no", "no")))
    assert job.counts == {"update": 1}
    assert job.rows.get().changes == {
        "email_consent": [True, False],
        "sms_consent": [True, False],
    }
    apply(job, UserFactory(role="Admin"))
    ann.refresh_from_db()
    assert (ann.email_consent, ann.sms_consent) == (False, False)
    withdrawn = ConsentRecord.objects.filter(customer=ann, granted=False)
    assert sorted(withdrawn.values_list("channel", flat=True)) == ["email", "sms"]


def test_an_order_file_applied_by_an_admin_credits_the_admin():
    admin = UserFactory(role="Admin")
    apply(check(upload("shopify_customers_export.csv")), admin)
    apply(check(upload("orders.csv", kind="orders")), admin)
    entries = AuditEntry.objects.filter(action=AuditAction.ORDER_IMPORT)
    assert entries.count() == 4
    assert {(e.actor, e.origin) for e in entries} == {(admin, AuditOrigin.STAFF)}


def test_orders_imported_without_an_actor_are_the_shop_s():
    # The storefront API's NDJSON import has no user.
    customer = CustomerFactory()
    draft = order_draft(
        number="A-1",
        lines=[LineInput(product_name="Mug", sku="", quantity=1, unit_price=Decimal("9.00"))],
        currency=None,
        source=None,
        medium=None,
        campaign=None,
        placed_at=timezone.now(),
        now=timezone.now(),
    )
    item = order_import_check(ImportedOrder(draft=draft, customer_id=customer.pk, status="paid"))
    orders_import([item])
    entry = AuditEntry.objects.get(action=AuditAction.ORDER_IMPORT)
    assert (entry.actor, entry.origin) == (None, AuditOrigin.SHOP)


def test_a_line_too_long_to_read_is_worded_in_the_language_of_the_page(admin_client_role):
    data = b'Email,First Name\nok@example.com,Ok\nlong@example.com,"' + b"a" * 70_000 + b"\n"
    job = check(_confirmed(upload("long.csv", data=data)))
    assert job.rows.get(action="refused").reasons == [["cell_too_long", "65536"]]
    english = admin_client_role.get(job.get_absolute_url(), headers={"accept-language": "en"})
    assert "The line cannot be read: a cell is longer than 65536 characters" in english.text
    french = admin_client_role.get(job.get_absolute_url(), headers={"accept-language": "fr"})
    assert "Ligne illisible\u00a0: une cellule dépasse 65536 caractères" in french.text
    assert "a cell is longer" not in french.text


def test_the_applied_counts_read_as_plurals_in_french(admin_client_role):
    job = apply(check(upload("shopify_customers_export.csv")), UserFactory(role="Admin"))
    french = admin_client_role.get(job.get_absolute_url(), headers={"accept-language": "fr"})
    counts = french.text.split('data-testid="applied-counts"')[1].split("</dl>")[0]
    assert [label for label in re.findall(r"<dt>([^<]*)</dt>", counts)] == [
        "Créés",
        "Mis à jour",
        "Inchangés",
        "Refusés",
    ]
    english = admin_client_role.get(job.get_absolute_url(), headers={"accept-language": "en"})
    counts = english.text.split('data-testid="applied-counts"')[1].split("</dl>")[0]
    assert re.findall(r"<dt>([^<]*)</dt>", counts) == ["Created", "Updated", "Unchanged", "Refused"]


def test_a_file_with_only_a_header_row_says_so_and_cannot_be_applied(admin_client_role):
    job = check(upload("empty.csv", data=SHOPIFY))
    assert (job.status, job.total_rows, job.has_no_rows) == ("checked", 0, True)
    page = admin_client_role.get(job.get_absolute_url(), headers={"accept-language": "en"})
    assert 'data-testid="import-status">No rows to import<' in page.text
    assert "The file has no rows to import: only its header row." in page.text
    assert reverse("imports:job-apply", args=[job.pk]) not in page.text
    french = admin_client_role.get(job.get_absolute_url(), headers={"accept-language": "fr"})
    assert "Le fichier n’a aucune ligne à importer\u00a0: seulement sa ligne d’en-tête." in (
        french.text
    )
    listed = admin_client_role.get(reverse("imports:job-list"), headers={"accept-language": "en"})
    assert "No rows to import" in listed.text
    with pytest.raises(services.NotAllowed):
        services.import_start_apply(job=job, actor=UserFactory(role="Admin"))
    refused = admin_client_role.post(reverse("imports:job-apply", args=[job.pk]))
    assert refused.status_code == 302
    job.refresh_from_db()
    assert job.status == "checked" and job.applied_by is None
