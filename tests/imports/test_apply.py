"""Applying: idempotent, resumable after a failure midway, and order history that leaves the
statistics exact."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.utils import timezone

from clients.models import AuditEntry, Customer
from imports import services
from imports.models import ImportStatus
from orders.models import Order
from privacy.models import ConsentRecord
from privacy.services import consent_record, consent_state_rebuild
from tests.factories import CustomerFactory, UserFactory, make_order
from tests.imports.conftest import FILES, apply, check, reasons, upload

pytestmark = pytest.mark.django_db


def _snapshot():
    return (
        list(Customer.objects.order_by("pk").values()),
        AuditEntry.objects.count(),
        ConsentRecord.objects.count(),
        list(Order.objects.order_by("pk").values("number", "status", "total")),
    )


def test_the_same_file_twice_changes_nothing_the_second_time():
    admin = UserFactory(role="Admin")
    apply(check(upload("shopify_customers_export.csv")), admin)
    before = _snapshot()
    again = check(upload("shopify_customers_export.csv"))
    assert again.counts == {"unchanged": 3, "refused": 5}
    again = apply(again, admin)
    assert again.applied_counts == {"unchanged": 3, "refused": 5}
    assert _snapshot() == before


def test_a_changed_consent_is_recorded_once_with_its_source():
    admin = UserFactory(role="Admin")
    apply(check(upload("shopify_customers_export_old.csv")), admin)
    data = (
        b"First Name,Last Name,Email,Accepts Marketing,Total Spent,Total Orders\n"
        b"Bob,Norman,BOB.NORMAN@example.com,no,0,0\n"
    )
    job = check(upload("unsubscribed.csv", data=data))
    row = job.rows.get()
    assert row.action == "update" and row.changes == {"email_consent": [True, False]}
    apply(job, admin)
    history = list(
        ConsentRecord.objects.filter(customer__email="bob.norman@example.com", channel="email")
        .order_by("id")
        .values_list("granted", "source", "note")
    )
    assert history == [
        (True, "import", "Shopify customer export: shopify_customers_export_old.csv"),
        (False, "import", "Shopify customer export: unsubscribed.csv"),
    ]
    # The customer's current state follows the newest record (privacy's consent ledger).
    assert Customer.objects.get(email="bob.norman@example.com").email_consent is False


def test_a_consent_dated_before_the_newest_recorded_one_goes_in_the_history_not_the_state():
    admin = UserFactory(role="Admin")
    day = timezone.now() - timedelta(days=10)
    early, late = (
        CustomerFactory(email="early@example.com"),
        CustomerFactory(email="late@example.com"),
    )
    for customer in (early, late):
        consent_record(customer=customer, channel="email", granted=True, source="phone", at=day)
    data = (
        f"Email,Newsletter,Consent date\n"
        f"early@example.com,no,{(day - timedelta(days=1)).isoformat()}\n"
        f"late@example.com,no,{(day + timedelta(days=1)).isoformat()}\n"
    ).encode()
    job = upload("consents.csv", data=data)
    job = services.import_set_mapping(
        job=job, mapping=["email", "email_consent", "email_consent_at"], date_order="dmy"
    )
    job = check(job)
    assert dict(job.rows.values_list("key", "changes")) == {
        "early@example.com": {"email_consent": [True, False]},
        "late@example.com": {"email_consent": [True, False]},
    }
    apply(job, admin)
    for customer in (early, late):
        history = ConsentRecord.objects.filter(customer=customer).order_by("at")
        assert list(history.values_list("granted", flat=True)) == (
            [False, True] if customer == early else [True, False]
        )
        customer.refresh_from_db()
        # The state is the newest record's: the file's only where it is the newest.
        assert customer.email_consent is (customer == early)
    assert consent_state_rebuild(check=True) == 0


def test_a_failure_midway_leaves_whole_batches_and_the_import_resumes(monkeypatch):
    monkeypatch.setattr(services, "BATCH", 2)
    admin = UserFactory(role="Admin")
    job = check(upload("shopify_customers_export.csv"))
    services.import_start_apply(job=job, actor=admin)
    flushes = {"n": 0}
    real_flush = services._CustomerWriter.flush

    def failing_flush(self):
        flushes["n"] += 1
        if flushes["n"] == 2:
            real_flush(self)  # the batch's writes are done, then it fails: all rolled back
            raise RuntimeError("the database went away")
        real_flush(self)

    monkeypatch.setattr(services._CustomerWriter, "flush", failing_flush)
    with pytest.raises(RuntimeError):
        services.import_apply(job_id=job.pk)
    services.import_fail(job_id=job.pk, message="stopped")
    job.refresh_from_db()
    assert job.status == ImportStatus.FAILED
    assert job.applied_rows == 6  # batches 1-3 (rows 1-6); batch 4 rolled back
    assert set(Customer.objects.values_list("email", flat=True)) == {
        "amelie.poulain@example.fr",
        "John.Smith@Example.com",
    }
    assert AuditEntry.objects.count() == 2

    job = services.import_start_apply(job=job, actor=admin)
    job = services.import_apply(job_id=job.pk)
    assert job.status == ImportStatus.APPLIED
    assert Customer.objects.count() == 3
    assert job.applied_counts == {"create": 3, "refused": 5}
    assert AuditEntry.objects.count() == 3


def test_applying_twice_at_once_does_nothing_more():
    admin = UserFactory(role="Admin")
    job = check(upload("shopify_customers_export.csv"))
    services.import_start_apply(job=job, actor=admin)
    services.import_apply(job_id=job.pk)
    services.import_apply(job_id=job.pk)  # a second run of the task: the job is applied
    assert Customer.objects.count() == 3
    with pytest.raises(services.NotAllowed):
        services.import_start_apply(job=job, actor=admin)


def test_order_history_fixes_statistics_and_the_clients_leads_split(capsys):
    admin = UserFactory(role="Admin")
    apply(check(upload("shopify_customers_export.csv")), admin)
    lead = Customer.objects.get(email="no.name@example.com")
    job = check(upload("orders.csv", kind="orders"))
    assert job.counts == {"create": 4, "refused": 3}
    assert reasons(job) == {6: "unknown_customer", 7: "duplicate_order", 8: "invalid_amount"}
    assert Order.objects.count() == 0  # the dry run was rolled back
    job = apply(job, admin)
    assert job.applied_counts == {"create": 4, "refused": 3}
    amelie = Customer.objects.get(email="amelie.poulain@example.fr")
    assert amelie.orders_count == 2  # paid and fulfilled; the cancelled one does not count
    assert amelie.total_spent == Decimal("120.50")
    assert amelie.is_client
    john = Customer.objects.get(email="John.Smith@Example.com")
    assert (john.orders_count, john.total_spent) == (1, Decimal("0.00"))
    assert not Customer.objects.get(pk=lead.pk).is_client
    call_command("rebuild_customer_stats", "--check")  # exits 1 on any drift
    assert ", 0 had drifted." in capsys.readouterr().out

    again = apply(check(upload("orders.csv", kind="orders")), admin)
    assert again.applied_counts == {"unchanged": 4, "refused": 3}


def test_an_order_moves_forward_and_keeps_statistics_exact():
    customer = CustomerFactory(email="a@example.com")
    make_order(customer, number="#9", status="pending", total="30.00")
    data = b"Email,Order number,Date,Total,Status\na@example.com,#9,%s,30.00,paid\n" % (
        Order.objects.get().placed_at.isoformat().encode()
    )
    job = check(upload("o.csv", kind="orders", data=data))
    assert job.counts == {"update": 1}
    apply(job, UserFactory(role="Admin"))
    customer.refresh_from_db()
    assert (customer.orders_count, customer.total_spent) == (1, Decimal("30.00"))
    call_command("rebuild_customer_stats", "--check")


def test_an_import_whose_worker_died_can_be_resumed(admin_client_role):
    from datetime import timedelta

    from django.urls import reverse
    from django.utils import timezone

    job = check(upload("shopify_customers_export.csv"))
    services.import_start_apply(job=job, actor=UserFactory(role="Admin"))
    # The worker took it and died: the job stays "applying" and its heartbeat gets old.
    url = reverse("imports:job-resume", args=[job.pk])
    admin_client_role.post(url)
    job.refresh_from_db()
    assert job.status == ImportStatus.APPLYING and Customer.objects.count() == 0  # not stale
    page = admin_client_role.get(job.get_absolute_url(), headers={"accept-language": "en"})
    assert "Resume" not in page.text and 'hx-trigger="every 2s"' in page.text
    type(job).objects.filter(pk=job.pk).update(
        heartbeat_at=timezone.now() - services.STALE_AFTER - timedelta(seconds=1)
    )
    page = admin_client_role.get(job.get_absolute_url(), headers={"accept-language": "en"})
    assert "may have stopped" in page.text and "Resume" in page.text
    from django.test import TestCase

    with TestCase.captureOnCommitCallbacks(execute=True):
        assert admin_client_role.post(url).status_code == 302
    job.refresh_from_db()
    assert job.status == ImportStatus.APPLIED and Customer.objects.count() == 3


def test_an_order_without_a_status_is_a_paid_one():
    customer = CustomerFactory(email="b@example.com")
    data = b"E-mail;Commande;Date;Montant\nb@example.com;A-1;31/12/2024 10:00;1 234,50\n"
    job = check(upload("commandes.csv", kind="orders", data=data))
    assert job.counts == {"create": 1}, reasons(job)
    apply(job, UserFactory(role="Admin"))
    order = Order.objects.get(number="A-1")
    assert (order.status, order.total) == ("paid", Decimal("1234.50"))
    customer.refresh_from_db()
    assert customer.is_client and customer.total_spent == Decimal("1234.50")


def test_shopifys_quote_is_taken_off_its_ids_phones_and_zips_only():
    """Shopify writes ids, phones and zips after a quote so that a spreadsheet keeps them as
    text, letters in a zip or not ('SW1A 1AA); a name may start with a quote of its own."""
    header = (
        "Customer ID,First Name,Last Name,Email,Accepts Email Marketing,Default Address Address1,"
        "Default Address City,Default Address Country Code,Default Address Zip,Phone\n"
    )
    row = (
        "'7012345678999,Gerard,'t Hooft,gerard@example.nl,no,Kerkstraat 1,London,GB,'SW1A 1AA,"
        "'+442079460000\n"
    )
    job = check(upload("quoted.csv", data=(header + row).encode()))
    apply(job, UserFactory())
    customer = Customer.objects.get(email="gerard@example.nl")
    assert (customer.external_id, customer.last_name, customer.phone) == (
        "7012345678999",
        "'t Hooft",
        "+44 20 7946 0000",
    )
    assert customer.default_billing_address.postal_code == "SW1A 1AA"


def test_shopify_orders_export_one_row_per_line_item():
    """Shopify's orders export writes an order's further line items on rows of their own,
    with the order's name and no total. Those rows say so; they were refused as an invalid
    amount (an empty one)."""
    CustomerFactory(email="amelie@example.fr")
    CustomerFactory(email="john@example.com")
    job = check(upload("shopify_orders_export.csv", kind="orders"))
    assert job.counts == {"create": 2, "refused": 1}
    assert job.rows.get(line=3).reasons == [["order_line", "#1001"]]
    apply(job, UserFactory(role="Admin"))
    john = Order.objects.get(number="#1002")
    assert (john.total, john.status, john.refunded_amount) == (
        Decimal("35.00"),
        "paid",
        Decimal("10.00"),
    )


def test_woocommerce_orders_export_with_its_refunds_and_currency():
    """The Customer / Order / Coupon Export extension's orders file: its refunded_total and
    order_currency columns were not read (a refunded order imported without its refund)."""
    apply(check(upload("woocommerce_customers.csv")), UserFactory(role="Admin"))
    job = upload("woocommerce_orders_export.csv", kind="orders")
    mapping = dict(zip(job.headers, job.mapping, strict=True))
    assert mapping["refunded_total"] == "refunded_amount"
    assert mapping["order_currency"] == "currency"
    job = check(job)
    assert job.counts == {"create": 2}, reasons(job)
    values = job.rows.get(line=3).values
    assert (values["status"], values["refunded_amount"], values["currency"]) == (
        "refunded",
        "35.00",
        "EUR",
    )


def test_an_orders_export_with_one_row_per_item_repeating_the_order():
    """The WooCommerce extension's "one row per item" orders file repeats the order's total on
    each item's row: those rows were refused as duplicates of the order."""
    apply(check(upload("woocommerce_customers.csv")), UserFactory(role="Admin"))
    data = (
        b"order_number,date,status,order_total,order_currency,billing_email,item_name\n"
        b"101,2024-03-05 10:12:00,completed,75.00,EUR,jeanne.martin@example.fr,T-shirt\n"
        b"101,2024-03-05 10:12:00,completed,75.00,EUR,jeanne.martin@example.fr,Mug\n"
        b"102,2024-03-06 10:12:00,completed,20.00,EUR,jeanne.martin@example.fr,Cap\n"
        b"102,2024-03-06 10:12:00,completed,25.00,EUR,jeanne.martin@example.fr,Cap\n"
    )
    job = check(upload("orders_items.csv", kind="orders", data=data))
    assert job.counts == {"create": 2, "refused": 2}
    # The same order with another total is no item of it: a duplicate, as before.
    assert reasons(job) == {3: "order_line", 5: "duplicate_order"}


WOO_CUSTOMERS = (FILES / "woocommerce_customers.csv").read_bytes().splitlines(keepends=True)[0]
WOO_GUEST = b"0,%s,%s,,%s,,2024-03-05 10:12:00,,,,,,,,,,,,,,,,,,,,,0.00,0\n"  # a guest: no login
WOO_ORDERS = b"order_number,date,status,order_total,order_currency,customer_id,billing_email\n"


def test_woocommerce_guests_with_customer_id_0_are_told_apart_by_their_email():
    """The extension writes every guest with customer_id 0: each guest after the first was
    refused as a duplicate of it, and guests' orders were credited to the first one."""
    admin = UserFactory(role="Admin")
    customers = (
        WOO_CUSTOMERS
        + WOO_GUEST % (b"Paul", b"Durand", b"paul.durand@example.fr")
        + WOO_GUEST % (b"Claire", b"Roux", b"claire.roux@example.fr")
    )
    job = check(upload("guests.csv", data=customers))
    assert job.counts == {"create": 2}, reasons(job)
    apply(job, admin)
    assert set(Customer.objects.values_list("email", "external_id")) == {
        ("paul.durand@example.fr", ""),
        ("claire.roux@example.fr", ""),
    }
    orders = WOO_ORDERS + (
        b"103,2024-03-07 10:00:00,completed,20.00,EUR,0,claire.roux@example.fr\n"
        b"104,2024-03-08 10:00:00,completed,30.00,EUR,0,paul.durand@example.fr\n"
    )
    apply(check(upload("guest_orders.csv", kind="orders", data=orders)), admin)
    assert Order.objects.get(number="103").customer.email == "claire.roux@example.fr"
    assert Order.objects.get(number="104").customer.email == "paul.durand@example.fr"


def test_an_order_whose_customer_id_and_email_are_two_customers_is_refused():
    # Two platforms' ids may collide: the id alone credited the order to whoever had it.
    CustomerFactory(email="a@example.com", external_id="12")
    CustomerFactory(email="b@example.com")
    orders = WOO_ORDERS + (
        b"201,2024-03-07 10:00:00,completed,20.00,EUR,12,b@example.com\n"
        b"202,2024-03-07 10:00:00,completed,20.00,EUR,12,renamed@example.com\n"
    )
    job = check(upload("collide.csv", kind="orders", data=orders))
    assert reasons(job) == {2: "customer_mismatch"}
    apply(job, UserFactory(role="Admin"))
    # An email that is nobody's may be one the customer changed since: the id decides.
    assert Order.objects.get(number="202").customer.email == "a@example.com"
    assert not Order.objects.filter(number="201").exists()


def test_shopifys_source_column_is_the_sales_channel_not_the_customers_source():
    # "web", "pos" or an app's id became the client's "Last source".
    amelie = CustomerFactory(email="amelie@example.fr")
    data = (
        b"Name,Email,Financial Status,Currency,Total,Created at,Lineitem quantity,"
        b"Lineitem name,Lineitem price,Source,Id\n"
        b"#3001,amelie@example.fr,paid,EUR,20.00,2024-03-05 10:12:00 +0100,1,Mug,20.00,web,9\n"
    )
    job = upload("shopify_orders.csv", kind="orders", data=data)
    assert dict(zip(job.headers, job.mapping, strict=True))["Source"] == ""
    apply(check(job), UserFactory(role="Admin"))
    assert Order.objects.get(number="#3001").source == ""
    amelie.refresh_from_db()
    assert (amelie.orders_count, amelie.last_source) == (1, "")
    # Another orders file's "source" column is the order's source, as before.
    other = b"number,email,date,total,source\nS-1,amelie@example.fr,2024-03-06,5.00,newsletter\n"
    apply(check(upload("orders.csv", kind="orders", data=other)), UserFactory(role="Admin"))
    assert Order.objects.get(number="S-1").source == "newsletter"


def test_a_new_address_from_a_file_with_one_replaces_both_defaults_it_set():
    # Shopify's one "Default Address" became both defaults; a later file with another
    # address changed the billing one only, leaving shipping on the old address.
    admin = UserFactory(role="Admin")
    first = (FILES / "shopify_customers_export.csv").read_bytes()
    apply(check(upload("shopify_customers_export.csv")), admin)
    amelie = Customer.objects.get(email="amelie.poulain@example.fr")
    assert amelie.default_billing_address_id == amelie.default_shipping_address_id
    moved = first.replace(b"15 rue des Trois Fr\xc3\xa8res", b"2 place du Tertre")
    job = check(upload("moved.csv", data=moved))
    (row,) = [r for r in job.rows.filter(action="update")]
    assert {"default_billing_address", "default_shipping_address"} <= set(row.changes)
    apply(job, admin)
    amelie.refresh_from_db()
    assert amelie.default_billing_address_id == amelie.default_shipping_address_id
    assert amelie.default_shipping_address.line1 == "2 place du Tertre"
    assert amelie.addresses.count() == 2  # the old one stays in the address book
