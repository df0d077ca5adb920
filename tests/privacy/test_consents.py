"""The consent ledger: staff records with a source and a note, push recorded automatically,
the state and history on the client page, the lists' filters."""

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from clients.models import Customer
from notifications.services import (
    subscription_remove,
    subscription_replace,
    subscription_save,
    subscriptions_expire,
)
from privacy.models import Channel, ConsentRecord, ConsentSource
from privacy.services import PrivacyError, consent_record, consent_state_rebuild
from tests.factories import CustomerFactory, UserFactory

pytestmark = pytest.mark.django_db

KEYS = {"p256dh": "BPk" + "x" * 84, "auth": "a" * 22}


def _form(**fields):
    values = {
        "channel": "email",
        "granted": "1",
        "source": "phone",
        "wording": "newsletter-2026-03",
        "note": "Called the shop on 3 March, asked for the newsletter.",
    }
    values.update(fields)
    return values


def test_staff_records_a_consent_and_the_client_page_shows_it(staff_client):
    customer = CustomerFactory()
    url = reverse("privacy:consent-create", args=[customer.pk])
    assert staff_client.get(url).status_code == 200
    response = staff_client.post(url, _form())
    assert response.status_code == 302
    customer.refresh_from_db()
    assert customer.email_consent is True and customer.sms_consent is False
    record = ConsentRecord.objects.get()
    assert (record.channel, record.granted, record.source) == ("email", True, "phone")
    assert record.recorded_by is not None and record.wording == "newsletter-2026-03"
    staff_client.post(url, _form(granted="0", note="Asked to stop on the phone."))
    customer.refresh_from_db()
    assert customer.email_consent is False
    page = staff_client.get(customer.get_absolute_url()).content.decode()
    assert "Called the shop on 3 March" in page and "Asked to stop on the phone." in page
    assert page.count("Staff, on the phone") == 2
    assert consent_state_rebuild(check=True) == 0


@pytest.mark.parametrize(
    "fields",
    [
        {"note": ""},
        {"note": "   "},
        {"source": ""},
        {"source": "storefront"},  # a source staff cannot claim
        {"source": "import"},
        {"channel": "push"},
        {"channel": "fax"},
        {"granted": "maybe"},
        {"note": "x" * 2001},
        {"wording": "\x00"},
    ],
)
def test_a_consent_without_source_and_note_is_refused(staff_client, fields):
    customer = CustomerFactory()
    response = staff_client.post(
        reverse("privacy:consent-create", args=[customer.pk]), _form(**fields)
    )
    assert response.status_code == 400
    assert not ConsentRecord.objects.exists()
    customer.refresh_from_db()
    assert customer.email_consent is False


def test_viewers_cannot_record_consents(viewer_client):
    customer = CustomerFactory()
    url = reverse("privacy:consent-create", args=[customer.pk])
    assert viewer_client.get(url).status_code == 403
    assert viewer_client.post(url, _form()).status_code == 403
    assert not ConsentRecord.objects.exists()
    assert "Record a consent" not in viewer_client.get(customer.get_absolute_url()).content.decode()


def test_the_service_refuses_staff_without_a_source_or_a_note():
    customer, staff = CustomerFactory(), UserFactory(role="Staff")
    with pytest.raises(PrivacyError):
        consent_record(customer=customer, channel="sms", granted=True, source="phone", actor=staff)
    with pytest.raises(PrivacyError):
        consent_record(
            customer=customer, channel="sms", granted=True, source="import", actor=staff, note="n"
        )
    with pytest.raises(PrivacyError):
        consent_record(customer=customer, channel="push", granted=True, source="import")
    # The shop's own import records without a staff member.
    consent_record(customer=customer, channel="sms", granted=True, source="import")
    assert Customer.objects.get(pk=customer.pk).sms_consent is True


def test_push_consent_is_recorded_as_subscriptions_start_and_end():
    customer, other = CustomerFactory(), CustomerFactory()
    first = subscription_save(customer=customer, endpoint="http://127.0.0.1:9/a", **KEYS)
    subscription_save(customer=customer, endpoint="http://127.0.0.1:9/a", **KEYS)  # refresh
    second = subscription_save(customer=customer, endpoint="http://127.0.0.1:9/b", **KEYS)
    subscription_remove(endpoint="http://127.0.0.1:9/b")
    renewed = subscription_replace(
        old_endpoint="http://127.0.0.1:9/a",
        old_auth=KEYS["auth"],
        endpoint="http://127.0.0.1:9/c",
        **KEYS,
    )
    subscriptions_expire(subscription_ids=[renewed.pk])
    # The same browser, now logged in as another customer.
    moved = subscription_save(customer=other, endpoint="http://127.0.0.1:9/b", **KEYS)
    records = list(
        ConsentRecord.objects.filter(channel=Channel.PUSH)
        .order_by("pk")
        .values_list("customer_id", "subscription_id", "granted", "source")
    )
    assert records == [
        (customer.pk, first.pk, True, ConsentSource.BROWSER),
        (customer.pk, second.pk, True, ConsentSource.BROWSER),
        (customer.pk, second.pk, False, ConsentSource.STOREFRONT),
        (customer.pk, first.pk, False, ConsentSource.REPLACED),
        (customer.pk, renewed.pk, True, ConsentSource.BROWSER),
        (customer.pk, renewed.pk, False, ConsentSource.PUSH_SERVICE),
        (other.pk, moved.pk, True, ConsentSource.BROWSER),
    ]


def test_the_lists_filter_on_email_and_sms_consent(viewer_client):
    given, sms, neither = CustomerFactory(), CustomerFactory(), CustomerFactory()
    consent_record(customer=given, channel="email", granted=True, source="storefront")
    consent_record(customer=sms, channel="sms", granted=True, source="storefront")

    def ids(query):
        response = viewer_client.get("/clients/leads/", query)
        assert response.status_code == 200
        return {int(row["id"]) for row in response.context["listing"].rows}

    assert ids({"email_consent": "true"}) == {given.pk}
    assert ids({"email_consent": "false"}) == {sms.pk, neither.pk}
    assert ids({"sms_consent": "true"}) == {sms.pk}
    assert ids({"email_consent": "false", "sms_consent": "false"}) == {neither.pk}
    assert ids({"email_consent": "nonsense"}) == {given.pk, sms.pk, neither.pk}


def test_rebuild_consent_state_reports_and_fixes_drift():
    customer = CustomerFactory()
    consent_record(customer=customer, channel="email", granted=True, source="storefront")
    Customer.objects.filter(pk=customer.pk).update(email_consent=False, sms_consent=True)
    with pytest.raises(SystemExit):
        call_command("rebuild_consent_state", "--check")
    call_command("rebuild_consent_state")
    customer.refresh_from_db()
    assert (customer.email_consent, customer.sms_consent) == (True, False)
    call_command("rebuild_consent_state", "--check")


def test_erased_customers_cannot_get_consents():
    from privacy.services import customers_erase

    customer = CustomerFactory()
    consent_record(
        customer=customer, channel="email", granted=True, source="storefront", at=timezone.now()
    )
    customers_erase(customers=Customer.objects.filter(pk=customer.pk))
    assert not ConsentRecord.objects.filter(customer=customer).exists()
    with pytest.raises(PrivacyError):
        consent_record(customer=customer, channel="email", granted=True, source="storefront")
