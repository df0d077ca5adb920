"""A customer with personal data everywhere the back office keeps it, for the privacy tests."""

from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.utils import timezone

from clients.models import Customer
from clients.services import customer_update_contact, note_save
from notifications.models import Campaign, Delivery, DeliveryStatus
from notifications.services import subscription_save
from orders.models import OrderStatus
from privacy.models import Channel, ConsentSource
from privacy.services import consent_record
from storefront.models import Launch, Platform
from tests.factories import UserFactory, make_order
from tests.storefront.conftest import Api, make_key

EMAIL = "zorglubina.quixoteval@example.org"
FIRST, LAST = "Zorglubina", "Quixotéval"
PHONE = "+33 6 98 76 54 32"
NEW_PHONE = "+33 7 11 29 38 47"
STREET, CITY, COMPANY = "17 rue des Quenouilles", "Plouzévédé-sur-Mer", "Quenouillerie SARL"
EXTERNAL_ID = "shop-zq-88231"
ENDPOINT = "http://127.0.0.1:9/push/zorgquix-endpoint-9f8e7d"
USER_AGENT = "ZorgBrowser/7.3 (QuixOS)"
NOTE = "Zorglubina prefers deliveries after 6 pm; her cousin Mortadelle picks up."
VISITOR = "visitor-zq-5521"


@dataclass
class Person:
    customer: Customer
    api: Api
    orders: list
    values: list[str]


@pytest.fixture
def person(db) -> Person:
    """A customer created through the API (as the shop does), with addresses, orders of every
    status, notes, contact changes, a push subscription that received a campaign, launches,
    and a Django admin log entry."""
    api = Api(make_key())
    created = api.post(
        "/customers",
        {
            "email": EMAIL,
            "first_name": FIRST,
            "last_name": LAST,
            "phone": PHONE,
            "external_id": EXTERNAL_ID,
            "visitor_id": VISITOR,
        },
        headers={"Idempotency-Key": "sign-up-zq"},
    )
    assert created.status_code == 201, created.content
    customer = Customer.objects.get(pk=created.json()["id"])
    address = api.post(
        f"/customers/{customer.pk}/addresses",
        {
            "name": f"{FIRST} {LAST}",
            "company": COMPANY,
            "line1": STREET,
            "postal_code": "29999",
            "city": CITY,
            "country": "FR",
            "phone": PHONE,
            "default_billing": True,
            "default_shipping": True,
        },
        headers={"Idempotency-Key": "address-zq"},
    )
    assert address.status_code == 201, address.content
    staff = UserFactory(role="Staff")
    customer.refresh_from_db()
    customer_update_contact(
        customer=customer,
        actor=staff,
        version=customer.version,
        first_name=FIRST,
        last_name=LAST,
        phone=NEW_PHONE,
    )
    note_save(customer=customer, actor=staff, text=NOTE, based_on=None)
    orders = [
        make_order(customer, status=status, total=total)
        for status, total in (
            (OrderStatus.PAID, "120.00"),
            (OrderStatus.FULFILLED, "80.50"),
            (OrderStatus.REFUNDED, "30.00"),
            (OrderStatus.PENDING, "15.00"),
            (OrderStatus.CANCELLED, "9.99"),
        )
    ]
    subscription = subscription_save(
        customer=customer,
        endpoint=ENDPOINT,
        p256dh="BPk" + "x" * 84,
        auth="a" * 22,
        user_agent=USER_AGENT,
    )
    campaign = Campaign.objects.create(
        title="Spring sale",
        body="20% off",
        audience_tab="clients",
        audience_kind="all",
        public_base_url="http://testserver",
        created_at=timezone.now(),
        send_at=timezone.now(),
    )
    Delivery.objects.create(
        campaign=campaign,
        subscription=subscription,
        batch=0,
        status=DeliveryStatus.SENT,
        sent_at=timezone.now(),
        clicked_at=timezone.now(),
        error=f"410 Gone for {ENDPOINT}",
    )
    now = timezone.now()
    Launch.objects.create(
        customer=customer,
        visitor_id=VISITOR,
        occurred_at=now - timedelta(days=1),
        received_at=now,
        source="newsletter",
        platform=Platform.WEB,
        device="ZorgPhone 12",
        referrer=f"https://mail.example/?to={EMAIL}",
    )
    LogEntry.objects.create(
        user=UserFactory(),
        content_type=ContentType.objects.get_for_model(Customer),
        object_id=str(customer.pk),
        object_repr=f"{FIRST} {LAST}",
        action_flag=CHANGE,
        change_message=f"Changed phone to {PHONE}",
    )
    consent_record(
        customer=customer,
        channel=Channel.EMAIL,
        granted=True,
        source=ConsentSource.PHONE,
        actor=staff,
        wording="newsletter-2026-03",
        note=f"{FIRST} said yes on the phone, call from {NEW_PHONE}",
    )
    customer.refresh_from_db()
    values = [
        EMAIL,
        FIRST,
        LAST,
        PHONE,
        NEW_PHONE,
        STREET,
        CITY,
        COMPANY,
        EXTERNAL_ID,
        ENDPOINT,
        USER_AGENT,
        NOTE,
        "Mortadelle",
        VISITOR,
        "ZorgPhone",
    ]
    return Person(customer=customer, api=api, orders=orders, values=values)
