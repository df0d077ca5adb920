"""Factories for tests. Orders go through the order services so statistics stay exact."""

from decimal import Decimal

import factory
from django.contrib.auth.models import Group, User
from django.utils import timezone

from clients.models import Address, Customer
from clients.services import customer_refresh_search_text
from orders.models import OrderStatus
from orders.services import LineInput, order_place, order_refund, order_set_status


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("secret-pass-123")

    @factory.post_generation
    def role(self, create, extracted, **kwargs):
        if create and extracted:
            self.groups.add(Group.objects.get(name=extracted))


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    email = factory.Sequence(lambda n: f"customer{n}@example.com")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    phone = factory.Sequence(lambda n: f"+33 6 {n % 100:02d} {n // 100 % 100:02d} 00 00")
    created_at = factory.LazyFunction(timezone.now)

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        customer = super()._create(model_class, *args, **kwargs)
        customer_refresh_search_text(customer)
        customer.save(update_fields=["search_text"])
        return customer


class AddressFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Address

    customer = factory.SubFactory(CustomerFactory)
    name = factory.Faker("name")
    line1 = factory.Faker("street_address")
    postal_code = factory.Faker("postcode")
    city = factory.Faker("city")
    country = "FR"


_order_numbers = iter(range(100000, 10**9))


def make_order(
    customer: Customer,
    *,
    status: str = OrderStatus.PAID,
    total: Decimal | str = "50.00",
    refunded: Decimal | str = "0",
    placed_at=None,
    source: str = "google",
    medium: str = "organic",
    number: str | None = None,
):
    """An order with one line for `total`, moved through the services to `status`."""
    total = Decimal(total)
    order = order_place(
        customer=customer,
        number=number or f"T{next(_order_numbers)}",
        lines=[LineInput(product_name="Test product", sku="TP-1", quantity=1, unit_price=total)],
        source=source,
        medium=medium,
        placed_at=placed_at or timezone.now(),
    )
    if status == OrderStatus.CANCELLED:
        return order_set_status(order=order, status=status)
    if status == OrderStatus.PENDING:
        return order
    order = order_set_status(order=order, status=OrderStatus.PAID)
    if status == OrderStatus.FULFILLED:
        order = order_set_status(order=order, status=OrderStatus.FULFILLED)
    if status == OrderStatus.REFUNDED:
        order = order_refund(order=order, amount=total)
    elif Decimal(refunded):
        order = order_refund(order=order, amount=Decimal(refunded))
    return order


_endpoints = iter(range(10**9))


def make_campaign(*, title: str = "Spring sale", link: str = "https://shop.example/sale", **fields):
    """A campaign row as if it had been sent (no delivery: add clicks with make_click)."""
    from notifications.models import Campaign, CampaignStatus

    now = timezone.now()
    values = {
        "title": title,
        "body": "20% off",
        "link": link,
        "audience_tab": "leads",
        "audience_kind": "all",
        "status": CampaignStatus.SENT,
        "public_base_url": "https://backoffice.example",
        "created_at": now,
        "send_at": now,
    }
    values.update(fields)
    return Campaign.objects.create(**values)


def make_click(customer: Customer, campaign, *, at, subscription=None):
    """`customer` clicked `campaign`'s notification at `at` (on a new device unless told)."""
    from notifications.models import Delivery, DeliveryStatus, PushSubscription

    if subscription is None:
        subscription = PushSubscription.objects.create(
            customer=customer,
            endpoint=f"https://fcm.googleapis.com/fcm/send/test-{next(_endpoints)}",
            p256dh="k",
            auth="a",
            created_at=at,
        )
    return Delivery.objects.create(
        campaign=campaign,
        subscription=subscription,
        batch=0,
        status=DeliveryStatus.SENT,
        sent_at=at,
        clicked_at=at,
    )
