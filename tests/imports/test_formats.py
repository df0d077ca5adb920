"""Each format, read from realistic files: recognized by its headers, every row's values and
refusals as the dry run finds them, then applied."""

import io
from datetime import datetime
from decimal import Decimal

import pytest
from django.utils import timezone
from openpyxl import Workbook

from clients.models import AuditEntry, Customer
from imports import reading
from imports.models import ImportFormat, ImportStatus
from imports.services import import_set_mapping
from privacy.models import ConsentRecord
from tests.factories import CustomerFactory, UserFactory
from tests.imports.conftest import FILES, apply, check, reasons, upload

pytestmark = pytest.mark.django_db


def test_shopify_current_export_dry_run_then_apply():
    job = upload("shopify_customers_export.csv")
    assert job.format == ImportFormat.SHOPIFY
    assert (job.encoding, job.delimiter) == ("utf-8", ",")
    job = check(job)
    assert job.status == ImportStatus.CHECKED
    assert Customer.objects.count() == 0  # the dry run writes nothing
    assert job.counts == {"create": 3, "refused": 5}
    # Line numbers are the file's: Amélie's note holds a quoted newline (lines 2-3).
    assert reasons(job) == {
        5: "invalid_email",
        6: "unknown_country",
        7: "invalid_phone",
        8: "duplicate",
        9: "formula",
    }
    assert job.rows.get(line=8).reasons == [["duplicate", "4"]]

    admin = UserFactory(role="Admin")
    job = apply(job, admin)
    assert job.status == ImportStatus.APPLIED
    assert job.applied_counts == {"create": 3, "refused": 5}
    amelie = Customer.objects.get(email="amelie.poulain@example.fr")
    assert (amelie.first_name, amelie.last_name) == ("Amélie", "Poulain")
    assert amelie.external_id == "7012345678901"  # Shopify's quote taken off
    assert amelie.phone == "+33 6 12 34 56 78"
    assert amelie.default_billing_address.postal_code == "75018"
    assert amelie.default_billing_address.line1 == "15 rue des Trois Frères"
    assert amelie.default_shipping_address == amelie.default_billing_address
    assert amelie.country == "FR"
    assert "amelie" in amelie.search_text and str(amelie.pk) in amelie.search_text
    john = Customer.objects.get(email__iexact="john.smith@example.com")
    assert john.email == "John.Smith@Example.com"
    assert john.phone == "+1 502-625-1199"
    assert john.default_billing_address.company == "ACME Corp"
    entry = AuditEntry.objects.get(customer=amelie)
    assert entry.action == "import" and entry.actor == admin
    assert entry.changes["file"] == ["", "shopify_customers_export.csv"]
    consents = {(c.customer.email, c.channel): c.granted for c in ConsentRecord.objects.all()}
    # A new customer's "no" withdraws nothing: no record (the customer's state is False).
    assert consents == {
        ("amelie.poulain@example.fr", "email"): True,
        ("John.Smith@Example.com", "sms"): True,
    }
    assert (amelie.sms_consent, john.email_consent) == (False, False)
    consent = ConsentRecord.objects.filter(customer=amelie).first()
    assert consent.source == "import" and consent.recorded_by == admin
    assert consent.note == "Shopify customer export: shopify_customers_export.csv"
    amelie.refresh_from_db()
    assert (amelie.email_consent, amelie.sms_consent) == (True, False)


def test_shopify_older_export_reads_phones_in_the_address_country():
    job = check(upload("shopify_customers_export_old.csv"))
    assert job.format == ImportFormat.SHOPIFY
    assert job.counts == {"create": 2}
    apply(job, UserFactory(role="Admin"))
    bob = Customer.objects.get(email="bob.norman@example.com")
    assert bob.phone == "+1 502-625-1199"
    assert bob.default_billing_address.region == "Kentucky"
    claire = Customer.objects.get(email="claire.dubois@example.fr")
    assert claire.phone == "+33 6 12 34 56 78"
    assert ConsentRecord.objects.get(customer=bob, channel="email").granted is True


def test_woocommerce_customer_export_with_billing_and_shipping():
    job = check(upload("woocommerce_customers.csv"))
    assert job.format == ImportFormat.WOOCOMMERCE
    assert job.counts == {"create": 2}
    apply(job, UserFactory(role="Admin"))
    jeanne = Customer.objects.get(email="jeanne.martin@example.fr")
    assert jeanne.external_id == "12"
    assert jeanne.default_billing_address.line1 == "3 place Bellecour"
    assert jeanne.default_shipping_address.line1 == "12 rue Mercière"
    assert timezone.localtime(jeanne.created_at).replace(tzinfo=None) == datetime(
        2024, 3, 5, 10, 12
    )
    paul = Customer.objects.get(email="paul.durand@example.fr")
    assert paul.default_billing_address is None and paul.phone == ""


def test_woocommerce_analytics_download():
    job = check(upload("woocommerce_analytics_customers.csv"))
    assert job.format == ImportFormat.WOOCOMMERCE
    apply(job, UserFactory(role="Admin"))
    lucie = Customer.objects.get(email="lucie.bernard@example.fr")
    assert (lucie.first_name, lucie.last_name) == ("Lucie", "Bernard")


def test_french_excel_csv_in_windows_1252_with_semicolons():
    job = upload("excel_fr_cp1252.csv")
    assert (job.encoding, job.delimiter) == ("cp1252", ";")
    assert job.headers[1] == "Prénom"
    # Not a known format: the columns are guessed, and the user confirms them.
    assert job.format == ImportFormat.MANUAL and job.status == ImportStatus.MAPPING
    assert job.mapping == [
        "email",
        "first_name",
        "last_name",
        "phone",
        "line1",
        "postal_code",
        "city",
        "country",
        "created_at",
    ]
    job = import_set_mapping(job=job, mapping=job.mapping, date_order="dmy")
    job = check(job)
    assert job.counts == {"create": 2}, reasons(job)
    apply(job, UserFactory(role="Admin"))
    helene = Customer.objects.get(email="helene.lefevre@example.fr")
    assert (helene.first_name, helene.last_name) == ("Hélène", "Lefèvre")
    assert timezone.localtime(helene.created_at).date().isoformat() == "2024-12-31"
    francois = Customer.objects.get(email="francois.cote@example.fr")
    assert francois.default_billing_address.line1 == "5 allée des Noyers\nBâtiment B"
    assert francois.default_billing_address.country == "FR"
    assert timezone.localtime(francois.created_at).strftime("%d/%m/%Y %H:%M") == (
        "01/02/2025 14:05"
    )


def test_our_french_export_utf8_with_bom():
    job = upload("ours_fr.csv")
    assert (job.encoding, job.delimiter, job.format) == ("utf-8-sig", ";", ImportFormat.OURS)
    assert job.headers[0] == "N° client"
    job = check(job)
    assert job.counts == {"create": 1}
    apply(job, UserFactory(role="Admin"))
    marc = Customer.objects.get(email="marc.petit@example.fr")
    assert marc.default_billing_address.city == "Toulouse"


def test_broken_rows_are_refused_one_by_one():
    job = upload("broken_rows.csv")
    job = check(import_set_mapping(job=job, mapping=job.mapping, date_order="dmy"))
    assert job.counts == {"create": 2, "refused": 3}
    assert reasons(job) == {3: "cells", 4: "nul", 6: "unclosed_quote"}
    assert set(job.rows.filter(action="create").values_list("key", flat=True)) == {
        "ok@example.com",
        "last.ok@example.com",
    }


def test_utf8_bom_and_crlf_shopify_file():
    data = b"\xef\xbb\xbf" + (FILES / "shopify_customers_export_old.csv").read_bytes().replace(
        b"\n", b"\r\n"
    )
    job = check(upload("bom.csv", data=data))
    assert job.encoding == "utf-8-sig" and job.headers[0] == "First Name"
    assert job.format == ImportFormat.SHOPIFY and job.counts == {"create": 2}


def test_utf8_file_with_a_stray_windows_1252_byte_reads_both():
    data = "Email,First Name,Last Name\nanna@example.com,Anna,Müller\n".encode()
    data += "bea@example.com,Béa,Roux\n".encode("cp1252")
    job = upload("mixed.csv", data=data)
    job = import_set_mapping(job=job, mapping=job.mapping, date_order="dmy")
    check(job)
    assert set(job.rows.values_list("values__first_name", flat=True)) == {"Anna", "Béa"}


def test_xlsx_shopify_export():
    book = Workbook()
    sheet = book.active
    sheet.append(
        [
            "First Name",
            "Last Name",
            "Email",
            "Accepts Email Marketing",
            "Phone",
            "Total Spent",
            "Total Orders",
        ]
    )
    sheet.append(["Iris", "Moreau", "iris@example.fr", "yes", "+33611111111", 12.5, 1])
    sheet.append(["Leo", "Garnier", "leo@example", "no", None, 0, 0])
    buffer = io.BytesIO()
    book.save(buffer)
    job = check(upload("customers.xlsx", data=buffer.getvalue()))
    assert job.encoding == "xlsx" and job.format == ImportFormat.SHOPIFY
    assert job.counts == {"create": 1, "refused": 1}
    assert reasons(job) == {3: "invalid_email"}


def test_update_never_changes_the_email_and_fills_what_is_given():
    customer = CustomerFactory(
        email="old@example.com", external_id="7012345678901", first_name="A", phone=""
    )
    job = check(upload("shopify_customers_export.csv"))
    row = job.rows.get(line=2)
    assert row.action == "update"
    assert row.changes["first_name"] == ["A", "Amélie"]
    assert "email" not in row.changes
    apply(job, UserFactory(role="Admin"))
    customer.refresh_from_db()
    assert customer.email == "old@example.com"
    assert customer.first_name == "Amélie"
    assert customer.version == 2


def test_email_of_a_customer_with_another_shop_id_is_refused():
    CustomerFactory(email="amelie.poulain@example.fr", external_id="other-id")
    job = check(upload("shopify_customers_export.csv"))
    assert reasons(job)[2] == "external_id_taken"


def test_values_are_read_the_french_and_english_ways():
    from imports import rows

    assert rows.amount("1 234,56", comma_decimal=True) == Decimal("1234.56")
    assert rows.amount("1,234.56", comma_decimal=False) == Decimal("1234.56")
    assert rows.amount("€70.50", comma_decimal=False) == Decimal("70.50")
    assert rows.amount("70,5", comma_decimal=False) == Decimal("70.50")
    with pytest.raises(rows.Refused):
        rows.amount("1,234", comma_decimal=True)  # 1.234: three decimals
    assert rows.moment("31/12/2025").day == 31
    assert rows.moment("12/31/2025", date_order="mdy").month == 12
    assert rows.moment("2025-12-31 14:05:00 +0100").utcoffset().total_seconds() == 3600
    assert rows.country("Allemagne") == "DE" and rows.country("germany") == "DE"
    assert rows.status("wc-completed") == "fulfilled" and rows.status("Payée") == "paid"


@pytest.mark.parametrize(
    "data,message",
    [
        (b"", "empty"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600, ".xls"),
        (b"PK\x03\x04not really a zip", "damaged"),
        (bytes(range(256)) * 40, "not a spreadsheet"),
    ],
)
def test_unreadable_files_are_refused_with_a_reason(data, message):
    with pytest.raises(reading.UnreadableFile) as refused:
        upload("bad.csv", data=data)
    assert message in str(refused.value)


def test_numbers_a_spreadsheet_rounded_are_refused_not_imported():
    """Shopify's export opened in Excel and saved again: the ids and phones Shopify wrote
    without a quote come back as "7.01235E+12" and "4.47701E+11", their digits lost. The
    rows are refused with that reason (two customers with the same rounded id are not
    "duplicates"); nothing rounded is stored."""
    job = check(upload("shopify_customers_excel_uk.csv"))
    assert job.format == ImportFormat.SHOPIFY
    assert reasons(job) == {2: "rounded_number", 3: "rounded_number"}
    assert job.rows.get(line=2).reasons == [["rounded_number", "7.01235E+12"]]
    from imports import rows

    for value in ("4,47701E+11", "3.36E+11", "1E+15"):
        with pytest.raises(rows.Refused):
            rows.customer_row(["email", "phone"], ["a@example.com", value])
    # A value that merely holds an E stays a value ('1E5' is no number a spreadsheet wrote).
    assert rows.customer_row(["email", "postal_code"], ["a@example.com", "1E5"]).values == {
        "email": "a@example.com"
    }


def test_prestashop_customer_export():
    job = upload("prestashop_customers.csv")
    assert (job.format, job.delimiter) == (ImportFormat.PRESTASHOP, ";")
    assert job.status == ImportStatus.CHECKING  # recognized: no columns to choose
    job = check(job)
    assert job.counts == {"create": 3, "refused": 1}
    assert reasons(job) == {5: "duplicate"}
    apply(job, UserFactory(role="Admin"))
    amelie = Customer.objects.get(email="amelie.poulain@example.fr")
    assert (amelie.first_name, amelie.last_name, amelie.external_id) == ("Amélie", "Poulain", "1")
    assert timezone.localtime(amelie.created_at).replace(tzinfo=None) == datetime(
        2024, 3, 5, 10, 12
    )
    consents = {(c.customer.email, c.granted) for c in ConsentRecord.objects.all()}
    # "Newsletter" is the shop's own email marketing; "Partner offers" is not imported. A
    # new customer's "no" is no withdrawal: no record.
    assert consents == {("amelie.poulain@example.fr", True)}


def test_magento_customers_main_file():
    job = upload("magento_customers_main.csv")
    assert job.format == ImportFormat.MAGENTO and job.status == ImportStatus.CHECKING
    job = check(job)
    assert job.counts == {"create": 2}
    apply(job, UserFactory(role="Admin"))
    roni = Customer.objects.get(email="roni_cost@example.com")
    assert (roni.first_name, roni.last_name) == ("Veronica", "Costello")
    assert timezone.localtime(roni.created_at).date().isoformat() == "2024-01-09"
    assert roni.external_id == ""  # Magento's file has no customer id
    # Opened in Excel and saved again: its dates' years shortened to two digits, and read
    # either way (09/01/24): the user says which.
    job = upload("magento_customers_main_excel.csv")
    assert (job.format, job.status) == (ImportFormat.MAGENTO, ImportStatus.MAPPING)
    job = check(import_set_mapping(job=job, mapping=job.mapping, date_order="dmy"))
    assert job.counts == {"create": 1}, reasons(job)
    assert job.rows.get().values["created_at"].startswith("2024-01-09T12:49")


def test_dates_with_two_digit_years_as_excel_writes_them():
    """A spreadsheet's short date format, saved to CSV ("09/01/24 12:49"), refused before."""
    from imports import rows

    assert rows.moment("09/01/24 12:49").replace(tzinfo=None) == datetime(2024, 1, 9, 12, 49)
    assert rows.moment("1/9/24", date_order="mdy").date().isoformat() == "2024-01-09"
    assert rows.moment("31/12/99").year == 1999


def test_magento_addresses_file_is_refused_with_what_to_do():
    with pytest.raises(reading.UnreadableFile) as refused:
        upload("magento_customer_addresses.csv")
    assert "Magento" in str(refused.value) and "Customers Main File" in str(refused.value)


def test_mailchimp_audience_export_subscribed_and_unsubscribed():
    admin = UserFactory(role="Admin")
    job = upload("mailchimp_subscribed_members.csv")
    assert job.format == ImportFormat.MAILCHIMP and job.status == ImportStatus.CHECKING
    # The address is one cell of parts two spaces apart: not imported, not refused.
    assert dict(zip(job.headers, job.mapping, strict=True))["Address"] == ""
    job = check(job)
    assert job.counts == {"create": 2}, reasons(job)
    apply(job, admin)
    ada = Customer.objects.get(email="ada@example.com")
    assert (ada.first_name, ada.phone, ada.email_consent) == ("Ada", "+33 6 12 34 56 78", True)
    record = ConsentRecord.objects.get(customer=ada)
    assert timezone.localtime(record.at).replace(tzinfo=None) == datetime(2024, 3, 14, 9, 14)
    assert record.note == "Mailchimp audience export: mailchimp_subscribed_members.csv"
    CustomerFactory(email="bob@example.com", email_consent=True)  # consent to withdraw
    job = check(upload("mailchimp_unsubscribed_members.csv"))
    assert job.counts == {"update": 1}, reasons(job)
    apply(job, admin)
    bob = Customer.objects.get(email="bob@example.com")
    assert bob.email_consent is False
    record = ConsentRecord.objects.get(customer=bob)
    assert record.granted is False
    assert timezone.localtime(record.at).replace(tzinfo=None) == datetime(2024, 2, 3, 4, 5, 6)


def test_woocommerce_analytics_download_sent_by_email():
    job = check(upload("woocommerce_analytics_customers_emailed.csv"))
    assert job.format == ImportFormat.WOOCOMMERCE
    created = job.rows.get().values["created_at"]
    assert created.startswith("2023-01-15T09:00")


def test_a_recognized_file_with_dates_either_way_asks_how_they_are_written():
    """WooCommerce's export opened in a US Excel: "3/5/2024" is March 5th there, May 3rd in
    the default day-first reading. No date of the file tells which: the import stops at the
    columns page for the user to say (it went straight to the dry run with May 3rd)."""
    job = upload("woocommerce_customers_excel_us.csv")
    assert job.format == ImportFormat.WOOCOMMERCE
    assert job.status == ImportStatus.MAPPING
    job = check(import_set_mapping(job=job, mapping=job.mapping, date_order="mdy"))
    created = job.rows.get(line=2).values["created_at"]
    assert created.startswith("2024-03-05T10:12")


def test_a_date_past_the_12th_tells_the_order_of_the_file():
    data = (FILES / "woocommerce_customers_excel_us.csv").read_bytes()
    data = data.replace(b"4/7/2024 8:00", b"4/17/2024 8:00")
    job = upload("us.csv", data=data)
    assert (job.status, job.date_order) == (ImportStatus.CHECKING, "mdy")
    job = check(job)
    assert job.rows.get(line=2).values["created_at"].startswith("2024-03-05T10:12")
    data = data.replace(b"4/17/2024 8:00", b"17/4/2024 8:00")
    assert upload("uk.csv", data=data).date_order == "dmy"


def test_wordpress_users_export_with_woocommerce_billing_fields():
    """A WordPress users export plugin's file: WordPress's own user fields (user_email,
    user_registered) and WooCommerce's billing_* meta. Before, it was not recognized and its
    email column was not guessed."""
    job = upload("wordpress_users_export.csv")
    assert job.format == ImportFormat.WOOCOMMERCE and job.status == ImportStatus.CHECKING
    job = check(job)
    assert job.counts == {"create": 2}, reasons(job)
    apply(job, UserFactory(role="Admin"))
    claire = Customer.objects.get(email="claire.roux@example.fr")
    assert (claire.first_name, claire.phone) == ("Claire", "+33 6 12 34 56 78")
    assert claire.default_billing_address.city == "Lyon"
    assert timezone.localtime(claire.created_at).date().isoformat() == "2022-09-14"


def test_a_postal_code_a_spreadsheet_took_for_a_number_gets_its_zeros_back():
    """Excel reads 02134 as the number 2134 and saves it so. Where every postal code has five
    digits (US, France, Germany, Italy, Spain), a shorter all-digit one lost its leading
    zeros: they are put back (Boston's 02134 was stored as 2134). Elsewhere it is kept."""
    from imports import rows

    mapping = ["email", "line1", "postal_code", "city", "country"]

    def postal_code(code, country):
        cells = ["a@example.com", "1 Main St", code, "Town", country]
        return rows.customer_row(mapping, cells).values["billing_address"]["postal_code"]

    assert postal_code("2134", "US") == "02134"
    assert postal_code("1000", "FR") == "01000"
    assert postal_code("100", "IT") == "00100"
    assert postal_code("1067", "DE") == "01067"
    assert postal_code("2134-1234", "US") == "2134-1234"  # not a number: as written
    assert postal_code("2000", "BE") == "2000"  # Belgium's have four digits


def test_shopify_export_saved_by_excel_as_unicode_text():
    """Excel's "Unicode Text": UTF-16 with its byte-order mark, tab separated, CRLF, the note's
    newline kept in quotes. Read as the CSV it came from."""
    import csv

    source = (FILES / "shopify_customers_export.csv").read_text(encoding="utf-8")
    text = io.StringIO()
    csv.writer(text, delimiter="\t", lineterminator="\r\n").writerows(
        csv.reader(io.StringIO(source))
    )
    job = upload("customers_export.txt", data=text.getvalue().encode("utf-16"))
    assert (job.encoding, job.delimiter, job.format) == ("utf-16", "\t", ImportFormat.SHOPIFY)
    job = check(job)
    assert job.counts == {"create": 3, "refused": 5}
    assert reasons(job)[9] == "formula"


def test_a_customer_without_an_email_is_refused_saying_why():
    """Shopify keeps customers known by their phone only: their row has no email."""
    from imports.views import reason_text

    data = (
        b"Customer ID,First Name,Last Name,Email,Accepts Email Marketing,Phone,Total Spent,"
        b"Total Orders\n'8779761975521,Tomotaka,Minoura,,no,'+8801912010701,0.00,0\n"
    )
    job = check(upload("phone_only.csv", data=data))
    assert reasons(job) == {2: "no_email"}
    assert "cannot be imported" in reason_text("no_email", "")


def test_a_european_amount_with_a_thousands_dot_and_no_decimals():
    """A semicolon file (European Excel) writes 1500 as "1.500": it was refused as an amount
    with three decimals."""
    from imports import rows

    assert rows.amount("1.500", comma_decimal=True) == Decimal("1500.00")
    assert rows.amount("12.345.678", comma_decimal=True) == Decimal("12345678.00")
    assert rows.amount("1.50", comma_decimal=True) == Decimal("1.50")


def test_every_financial_status_of_shopifys_orders_export():
    """Shopify's financial statuses: "expired" (an authorization that lapsed unpaid) was
    refused as unknown."""
    from imports import rows

    found = {
        s: rows.status(s)
        for s in (
            "pending",
            "authorized",
            "partially_paid",
            "paid",
            "partially_refunded",
            "refunded",
            "voided",
            "expired",
        )
    }
    assert found["expired"] == "cancelled" and found["voided"] == "cancelled"


def test_a_phone_number_whose_plus_a_spreadsheet_dropped():
    """Excel reads "+4915112345678" as the number 4915112345678 and saves it so. Read in the
    address's country as a national number, it became +49 491 5112345678 (a landline in
    Leer, not the customer's mobile). Digits that start with the country's calling code are
    the international number they were."""
    from imports import rows

    assert rows.phone("4915112345678", "DE") == rows.phone("+4915112345678") == "+49 1511 2345678"
    assert rows.phone("33612345678", "FR") == "+33 6 12 34 56 78"
    assert rows.phone("15026251199", "US") == "+1 502-625-1199"
    assert rows.phone("0491 1234567", "DE") == "+49 491 1234567"  # national: as before
    assert rows.phone("030 123456", "DE") == "+49 30 123456"


def test_other_platforms_email_and_address_columns_are_guessed():
    # Files of no known format go to the columns page; these headers were not pre-filled
    # (Wix's "Email 1", Ecwid's "customer_email", HubSpot's address and creation date).
    data = (
        b"First Name,Last Name,Email 1,Street Address,City,Country/Region,Create Date\n"
        b"Ada,Lovelace,ada@example.com,12 St James's Square,London,GB,2024-03-05\n"
    )
    job = upload("contacts.csv", data=data)
    assert job.format == ImportFormat.MANUAL and job.status == ImportStatus.MAPPING
    assert job.mapping == [
        "first_name",
        "last_name",
        "email",
        "line1",
        "city",
        "country",
        "created_at",
    ]
    ecwid = upload("customers.csv", data=b"customer_email,name\nbob@example.com,Bob Lee\n")
    assert ecwid.mapping == ["email", "full_name"]
