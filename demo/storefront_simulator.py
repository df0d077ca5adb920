"""A believable storefront playing against the back office through its real HTTP API.

Visitors open the app or the site (launches from Google ads, Instagram, the newsletter,
typed addresses...), some sign up, customers come back and order, orders get paid (most),
fulfilled, sometimes cancelled or refunded. Every call is a real HTTP request with the API
key and an Idempotency-Key (retried with the same key after a network error, as a real
client should). Used by `manage.py simulate_storefront` (and `make run`).
"""

import http.client
import json
import random
import time
import unicodedata
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from urllib.parse import urlsplit

from django.utils import timezone
from faker import Faker

# (source, medium, campaign, weight): where launches come from.
SOURCES = [
    ("google", "cpc", "brand-search", 22),
    ("google", "organic", "", 18),
    ("instagram", "social", "winter-looks", 12),
    ("facebook", "social", "retargeting", 8),
    ("newsletter", "email", "weekly", 14),
    ("push", "notification", "", 5),
    ("", "", "", 21),  # typed the address, opened the app from the home screen
]
PRODUCTS = [
    ("Merino scarf", "SCARF-MER", "39.90"),
    ("Leather gloves", "GLOVE-LTH", "54.00"),
    ("Wool beanie", "BEANIE-WL", "24.50"),
    ("Canvas tote bag", "TOTE-CNV", "19.90"),
    ("Ceramic mug", "MUG-CER", "14.00"),
    ("Linen shirt", "SHIRT-LIN", "69.00"),
    ("Sneakers", "SNKR-WHT", "89.00"),
    ("Rain jacket", "JKT-RAIN", "119.00"),
    ("Socks (3 pairs)", "SOCK-3P", "12.90"),
    ("Notebook", "NOTE-A5", "9.50"),
]
PLATFORMS = [("ios", "iPhone 15"), ("android", "Pixel 8"), ("web", "Firefox"), ("web", "Safari")]


def _ascii(name: str) -> str:
    """A name as an email's local part: lower-case ASCII letters and digits."""
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return "".join(c for c in folded.lower() if c.isalnum()) or "customer"


class ApiError(Exception):
    def __init__(self, status: int, document: dict):
        super().__init__(f"{status} {document.get('type', '')}: {document.get('detail', '')}")
        self.status = status
        self.document = document


class Client:
    """A small HTTP/1.1 client of the storefront API (one kept-alive connection)."""

    def __init__(self, base_url: str, key: str, timeout: float = 10.0):
        parts = urlsplit(base_url)
        self.https = parts.scheme == "https"
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if self.https else 80)
        self.root = parts.path.rstrip("/") + "/api/v1"
        self.key = key
        self.timeout = timeout
        self.connection = None

    def _connect(self):
        kind = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
        self.connection = kind(self.host, self.port, timeout=self.timeout)

    def call(self, method: str, path: str, body: dict | None = None, *, attempts: int = 3):
        headers = {"Authorization": f"Bearer {self.key}", "Accept": "application/json"}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if method == "POST":
            # The same key on every retry: a request that reached the server is not redone.
            headers["Idempotency-Key"] = str(uuid.uuid4())
        for attempt in range(attempts):
            if self.connection is None:
                self._connect()
            try:
                self.connection.request(method, self.root + path, body=payload, headers=headers)
                response = self.connection.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException):
                self.connection.close()
                self.connection = None
                if attempt == attempts - 1:
                    raise
                time.sleep(0.5 * (attempt + 1))
                continue
            if response.status == 429 and attempt < attempts - 1:
                time.sleep(float(response.getheader("Retry-After") or 1))
                continue
            document = json.loads(data) if data else {}
            if response.status >= 400:
                raise ApiError(response.status, document)
            return document
        raise RuntimeError("unreachable")

    def close(self):
        if self.connection is not None:
            self.connection.close()


@dataclass
class Shop:
    """What the storefront remembers between actions."""

    customers: list[int] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    paid: list[str] = field(default_factory=list)
    fulfilled: list[str] = field(default_factory=list)
    refundable: dict[str, Decimal] = field(default_factory=dict)


class Storefront:
    def __init__(self, client: Client, *, seed: int | None = None, out=None):
        self.client = client
        self.random = random.Random(seed)
        self.fake = Faker(["fr_FR", "en_GB", "de_DE"])
        self.fake.seed_instance(self.random.randrange(2**31))
        self.shop = Shop()
        self.out = out
        self.counts: dict[str, int] = {}
        self.run_id = uuid.uuid4().hex[:6].upper()
        self.order_seq = 0

    def say(self, action: str, text: str) -> None:
        self.counts[action] = self.counts.get(action, 0) + 1
        if self.out is not None:
            # The shop's time, as the server's own log lines beside these write it.
            self.out(f"{timezone.localtime():%H:%M:%S} {action:<9} {text}")

    # --- What people do -------------------------------------------------------------------

    def _source(self):
        source, medium, campaign, _ = self.random.choices(SOURCES, [s[3] for s in SOURCES])[0]
        return source, medium, campaign

    def _launch(self, *, customer_id=None, visitor_id=""):
        source, medium, campaign = self._source()
        platform, device = self.random.choice(PLATFORMS)
        body = {"platform": platform, "device": device, "source": source, "medium": medium}
        if campaign:
            body["campaign"] = campaign
        if customer_id:
            body["customer_id"] = customer_id
        if visitor_id:
            body["visitor_id"] = visitor_id
        self.client.call("POST", "/launches", body)
        return source or "direct", medium

    def sign_up(self):
        visitor = uuid.uuid4().hex
        source, medium = self._launch(visitor_id=visitor)
        first, last = self.fake.first_name(), self.fake.last_name()
        email = f"{_ascii(first)}.{_ascii(last)}.{uuid.uuid4().hex[:6]}@example.com"
        customer = self.client.call(
            "POST",
            "/customers",
            {
                "email": email,
                "first_name": first,
                "last_name": last,
                "visitor_id": visitor,
                "external_id": f"sim-{uuid.uuid4().hex[:12]}",
            },
        )
        self.shop.customers.append(customer["id"])
        self.client.call(
            "POST",
            f"/customers/{customer['id']}/addresses",
            {
                "name": f"{first} {last}",
                "line1": self.fake.street_address()[:200],
                "postal_code": self.fake.postcode()[:20],
                "city": self.fake.city()[:100],
                "country": self.random.choice(["FR", "FR", "FR", "BE", "DE", "GB"]),
            },
        )
        origin = f"{source} / {medium}" if medium else source
        self.say("sign-up", f"#{customer['id']} {first} {last} (from {origin})")

    def come_back(self):
        customer_id = self.random.choice(self.shop.customers)
        source, medium = self._launch(customer_id=customer_id)
        self.say("launch", f"#{customer_id} opened the app from {source} {medium}".rstrip())

    def order(self):
        customer_id = self.random.choice(self.shop.customers)
        self._launch(customer_id=customer_id)
        picks = self.random.sample(PRODUCTS, self.random.choice([1, 1, 2, 2, 3, 4]))
        lines = [
            {
                "product_name": n,
                "sku": s,
                "quantity": self.random.choice([1, 1, 1, 2]),
                "unit_price": p,
            }
            for n, s, p in picks
        ]
        self.order_seq += 1
        number = f"SIM-{self.run_id}-{self.order_seq:05d}"
        # No source: the launch just recorded attributes the order.
        order = self.client.call(
            "POST",
            "/orders",
            {
                "number": number,
                "customer_id": customer_id,
                "lines": lines,
                "shipping": self.random.choice(["0.00", "4.90", "6.90"]),
            },
        )
        self.shop.pending.append(number)
        self.shop.refundable[number] = Decimal(order["total"])
        self.say("order", f"{number} by #{customer_id}: {order['total']} {order['currency']}")

    def pay(self):
        number = self.shop.pending.pop(0)
        self.client.call("POST", f"/orders/{number}/pay")
        self.shop.paid.append(number)
        self.say("payment", f"{number} paid")

    def cancel(self):
        number = self.shop.pending.pop(self.random.randrange(len(self.shop.pending)))
        self.client.call("POST", f"/orders/{number}/cancel")
        self.shop.refundable.pop(number, None)
        self.say("cancel", f"{number} cancelled before payment")

    def fulfil(self):
        number = self.shop.paid.pop(0)
        self.client.call("POST", f"/orders/{number}/fulfil")
        self.shop.fulfilled.append(number)
        self.say("fulfil", f"{number} shipped")

    def refund(self):
        number = self.random.choice(self.shop.fulfilled)
        left = self.shop.refundable.get(number, Decimal(0))
        if left <= 0:
            return
        amount = left if self.random.random() < 0.4 else (left / 3).quantize(Decimal("0.01"))
        if amount <= 0:
            return
        self.client.call("POST", f"/orders/{number}/refunds", {"amount": str(amount)})
        self.shop.refundable[number] = left - amount
        if left - amount == 0:
            self.shop.fulfilled.remove(number)
        self.say("refund", f"{number} refunded {amount}")

    def step(self):
        """One thing happens in the shop."""
        shop = self.shop
        choices = [(self.sign_up, 12 if shop.customers else 100)]
        if shop.customers:
            choices += [(self.come_back, 30), (self.order, 20)]
        if shop.pending:
            choices += [(self.pay, 18 if len(shop.pending) > 2 else 6), (self.cancel, 2)]
        if shop.paid:
            choices += [(self.fulfil, 12)]
        if shop.fulfilled:
            choices += [(self.refund, 2)]
        action = self.random.choices([c[0] for c in choices], [c[1] for c in choices])[0]
        action()

    def load_customers(self, limit: int = 200):
        """Start from some of the shop's existing customers (the API's customer list)."""
        page = self.client.call("GET", f"/customers?limit={limit}")
        self.shop.customers.extend(c["id"] for c in page["data"])
