"""A small shop for the browser tests: named clients with orders, leads, addresses."""

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from clients.models import Customer
from clients.services import address_create, customer_create
from orders.models import Order, OrderStatus
from tests.factories import make_order

FIRST_NAMES = ("Alice", "Bruno", "Chloé", "Denis", "Emma", "Farid", "Gaëlle", "Hugo")
LAST_NAMES = ("Martin", "Bernard", "Dubois", "Thomas", "Robert", "Petit", "Durand", "Leroy")
SOURCES = (("google", "cpc"), ("facebook", "social"), ("newsletter", "email"), ("direct", "none"))


@dataclass
class Shop:
    clients: list[Customer]
    leads: list[Customer]
    star: Customer  # the client with the most orders, two addresses and a refund
    star_order: Order


def build_shop(*, clients: int = 30, leads: int = 6) -> Shop:
    """`clients` customers with 1 to 4 orders each and `leads` without any."""
    now = timezone.now().replace(microsecond=0)
    made = []
    for index in range(clients):
        customer = customer_create(
            email=f"client{index:02d}@example.com",
            first_name=FIRST_NAMES[index % len(FIRST_NAMES)],
            last_name=f"{LAST_NAMES[index // len(FIRST_NAMES) % len(LAST_NAMES)]}{index:02d}",
            phone=f"+33 6 12 34 {index:02d} 00",
            created_at=now - timedelta(days=400 - index),
        )
        source, medium = SOURCES[index % len(SOURCES)]
        for number in range(1 + index % 4):
            make_order(
                customer,
                total=Decimal("19.90") + Decimal(index * 7 + number * 31),
                placed_at=now - timedelta(days=300 - index * 9 - number * 5),
                source=source,
                medium=medium,
                number=f"A{index:02d}{number}",
            )
        made.append(Customer.objects.get(pk=customer.pk))
    lead_list = [
        customer_create(
            email=f"lead{index:02d}@example.com",
            first_name="Lina",
            last_name=f"Prospect{index:02d}",
            created_at=now - timedelta(days=20 - index),
        )
        for index in range(leads)
    ]
    star = customer_create(
        email="zephyrine@example.com",
        first_name="Zéphyrine",
        last_name="Lefèvre",
        phone="+33 6 98 76 54 32",
        created_at=now - timedelta(days=500),
    )
    address_create(
        customer=star,
        name="Zéphyrine Lefèvre",
        line1="12 rue des Lilas",
        postal_code="75011",
        city="Paris",
        country="FR",
    )
    address_create(
        customer=star,
        name="Zéphyrine Lefèvre",
        company="Atelier Lefèvre",
        line1="3 quai Saint-Vincent",
        postal_code="69001",
        city="Lyon",
        country="FR",
    )
    for number, total in enumerate(("1234.56", "89.90", "310.00")):
        make_order(
            star,
            total=total,
            placed_at=now - timedelta(days=200 - number * 60),
            status=OrderStatus.FULFILLED if number else OrderStatus.PAID,
            number=f"Z{number}",
        )
    make_order(star, total="45.00", status=OrderStatus.REFUNDED, number="Z9", placed_at=now)
    return Shop(
        clients=made,
        leads=lead_list,
        star=Customer.objects.get(pk=star.pk),
        star_order=Order.objects.get(number="Z0"),
    )
