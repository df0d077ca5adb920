"""Demo data: a believable shop, generated fast enough for a million customers.

Faker is called only to fill pools (names, streets, towns, e-mail domains) once per run; rows are
then combined from the pools with a seeded `random.Random`, so a million customers cost seconds
of Python instead of hours of Faker calls, and the same seed gives the same shop.

Every value is produced as PostgreSQL COPY text (the fast path); SQLite receives the same rows
through `bulk_create` (see `TableSpec.instances`). The customers' stored statistics, search text
and country are computed here from the very rows generated, so they are exact from the start
(`rebuild_customer_stats --check` reports no drift).
"""

import base64
import json
import queue
import random
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from django.conf import settings
from django.core.management.color import no_style
from django.db import connections, models, transaction
from django.db.models import Max
from faker import Faker

from clients.models import ADDRESS_FIELDS, Address, Customer, Note
from clients.search import customer_search_text, normalize
from orders.models import FINALIZED_STATUSES, Order, OrderLine, OrderStatus

try:  # The notifications app owns subscriptions; the demo fills them when the model exists.
    from notifications.models import PushSubscription
except ImportError:  # pragma: no cover - only before the notifications app has its model
    PushSubscription = None

NULL = "\\N"  # COPY text format's NULL
DAY = 86400
YEARS_OF_HISTORY = 3

# (Faker locale, country code, share of customers)
LOCALES = (("fr_FR", "FR", 0.60), ("en_GB", "GB", 0.25), ("en_US", "US", 0.15))

# (source, medium, campaigns, weight): where customers come from when they open the shop.
TRAFFIC = (
    ("google", "organic", ("",), 30),
    ("google", "cpc", ("brand-search", "shopping-feed", "summer-sale", "black-friday"), 14),
    ("direct", "none", ("",), 18),
    ("facebook", "referral", ("",), 8),
    ("facebook", "cpc", ("retargeting", "lookalike-buyers"), 5),
    ("newsletter", "email", ("weekly-picks", "new-arrivals", "winter-sale", "welcome-series"), 12),
    ("instagram", "social", ("", "stories"), 5),
    ("bing", "organic", ("",), 3),
    ("push", "web-push", ("back-in-stock", "flash-sale"), 2),
    ("awin", "affiliate", ("cashback", "vouchers"), 2),
    ("tiktok", "cpc", ("creator-collab",), 1),
)

# (name, SKU, price in cents, excluding VAT)
PRODUCTS = (
    ("Organic cotton T-shirt", "TS-ORG", 2490),
    ("Merino wool jumper", "JM-MER", 8900),
    ("Linen shirt", "SH-LIN", 5900),
    ("Slim selvedge jeans", "JN-SEL", 9900),
    ("Canvas tote bag", "BG-TOT", 1900),
    ("Leather belt", "BL-LEA", 3900),
    ("Wool beanie", "HT-BEA", 2200),
    ("Cashmere scarf", "SC-CAS", 11900),
    ("Rain jacket", "JK-RAI", 12900),
    ("Down parka", "JK-PAR", 24900),
    ("Running sneakers", "SN-RUN", 10900),
    ("Leather ankle boots", "BT-ANK", 15900),
    ("Everyday socks (3 pairs)", "SK-EVE", 1490),
    ("Silk pillowcase", "HM-SIL", 4900),
    ("Stoneware mug", "HM-MUG", 1600),
    ("Scented candle, fig", "HM-CFG", 2800),
    ("Linen tea towel", "HM-TEA", 1200),
    ("Ceramic vase", "HM-VAS", 3900),
    ("Throw blanket", "HM-THR", 6900),
    ("Notebook, dotted A5", "ST-NBK", 1450),
    ("Fountain pen", "ST-PEN", 3200),
    ("Reusable water bottle", "AC-BOT", 2400),
    ("Sunglasses, tortoiseshell", "AC-SUN", 7900),
    ("Leather wallet", "AC-WAL", 4500),
    ("Gift card 50", "GC-050", 5000),
    ("Gift card 100", "GC-100", 10000),
    ("Face serum, vitamin C", "BE-SER", 3400),
    ("Hand cream", "BE-HAN", 1290),
    ("Shampoo bar", "BE-SHA", 990),
    ("Yoga mat", "SP-YOG", 4900),
)

NOTE_SENTENCES = (
    "Prefers delivery to a parcel locker.",
    "Asked not to receive paper catalogues.",
    "Called about a late parcel; the carrier confirmed delivery the next day.",
    "Sent a 10% voucher after a damaged item.",
    "Regular buyer of gift cards for the team's birthdays.",
    "Wants invoices with the company name.",
    "Returned two items in the wrong size; exchanged without charge.",
    "Very happy with the last order, left a review.",
    "Do not call before 10 am.",
    "Asked about restocking of the merino jumper in size L.",
    "Interested in the wholesale programme; forwarded to sales.",
    "Complained about packaging waste; noted for the packaging review.",
    "Pays by bank transfer; check payment before shipping.",
    "Speaks French only on the phone.",
    "Delivery address is a shop: deliver on weekdays only.",
    "Chargeback opened by the bank, resolved in the customer's favour.",
)

USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (Linux; Android 13; SM-A536B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
)

_NOT_LETTER = re.compile(r"[^a-z]+")
_UNSAFE = str.maketrans({"\t": " ", "\n": " ", "\r": " ", "\\": "/"})


def _clean(text: str) -> str:
    """Pool values go into COPY text as they are: no tab, newline or backslash."""
    return text.translate(_UNSAFE).strip()


def _slug(text: str) -> str:
    return _NOT_LETTER.sub("", normalize(text))


@dataclass
class LocalePool:
    country: str
    female: list[str]
    male: list[str]
    last: list[str]
    streets: list[str]
    second_lines: list[str]
    # (postal code, city, region)
    places: list[tuple[str, str, str]]
    companies: list[str]
    domains: list[str]
    slugs: dict[str, str] = field(default_factory=dict)


def _unique(make, count: int, tries: int = 4) -> list[str]:
    values = dict.fromkeys(_clean(make()) for _ in range(count * tries))
    return [v for v in values if v][:count]


def build_pools(seed: int, scale: int) -> list[tuple[LocalePool, float]]:
    """Names, streets and towns from Faker, sized for `scale` customers (a few thousand max)."""
    size = max(50, min(2000, scale // 2))
    pools = []
    for index, (locale, country, share) in enumerate(LOCALES):
        fake = Faker(locale)
        fake.seed_instance(seed * 31 + index)
        if country == "FR":
            region = fake.region
        elif country == "GB":
            region = fake.county
        else:
            region = fake.state_abbr
        pool = LocalePool(
            country=country,
            female=_unique(fake.first_name_female, min(size, 300)),
            male=_unique(fake.first_name_male, min(size, 300)),
            last=_unique(fake.last_name, min(size, 600)),
            streets=_unique(fake.street_address, size * 2, tries=1),
            second_lines=(
                [f"Appartement {n}" for n in range(1, 40)]
                + [f"Bâtiment {c}" for c in "ABCDE"]
                + ["Résidence les Tilleuls", "Chez M. et Mme Petit"]
                if country == "FR"
                else _unique(fake.secondary_address, 60)
            ),
            places=[
                (_clean(fake.postcode()), _clean(fake.city()), _clean(region()))
                for _ in range(size)
            ],
            companies=_unique(fake.company, 100),
            domains=_unique(fake.free_email_domain, 8, tries=20),
        )
        for name in (*pool.female, *pool.male, *pool.last):
            pool.slugs[name] = _slug(name)
        pools.append((pool, share))
    return pools


class TableSpec:
    """The columns the generator fills for one model; every other column gets its default."""

    def __init__(self, model: type[models.Model], attnames: tuple[str, ...]):
        self.model = model
        self.attnames = attnames
        fields = {f.attname: f for f in model._meta.concrete_fields}
        self.fields = [fields[name] for name in attnames]
        self.table = model._meta.db_table
        rest = [f for f in fields.values() if f.attname not in attnames]
        self.default_values = {f.attname: f.get_default() for f in rest}
        self.columns = [f.column for f in self.fields] + [f.column for f in rest]
        suffix = "".join(
            "\t" + _copy_text(f, v) for f, v in zip(rest, self.default_values.values(), strict=True)
        )
        self.line_suffix = suffix + "\n"

    def copy_text(self, rows: list[tuple[str, ...]]) -> str:
        suffix = self.line_suffix
        return "".join(["\t".join(row) + suffix for row in rows])

    def instances(self, rows: list[tuple[str, ...]]) -> list[models.Model]:
        """The rows as model instances for bulk_create (the SQLite path)."""
        converters = [_python_value(f) for f in self.fields]
        names = self.attnames
        result = []
        for row in rows:
            values = dict(self.default_values)
            for name, convert, value in zip(names, converters, row, strict=True):
                values[name] = None if value == NULL else convert(value)
            result.append(self.model(**values))
        return result


def _copy_text(model_field, value) -> str:
    if value is None:
        return NULL
    if isinstance(model_field, models.JSONField):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime):
        return value.isoformat()
    return _clean(str(value))


def _python_value(model_field):
    if isinstance(model_field, models.JSONField):
        return json.loads
    return model_field.to_python


CUSTOMER = TableSpec(
    Customer,
    (
        "id",
        "email",
        "first_name",
        "last_name",
        "phone",
        "created_at",
        "default_billing_address_id",
        "default_shipping_address_id",
        "orders_count",
        "total_spent",
        "first_order_at",
        "last_order_at",
        "last_order_id",
        "last_source",
        "last_medium",
        "country",
        "push_opt_in",
        "search_text",
    ),
)
ADDRESS = TableSpec(Address, ("id", "customer_id", *ADDRESS_FIELDS))
ORDER = TableSpec(
    Order,
    (
        "id",
        "number",
        "customer_id",
        "placed_at",
        "status",
        "currency",
        "subtotal",
        "shipping",
        "tax",
        "discount",
        "total",
        "refunded_amount",
        "source",
        "medium",
        "campaign",
        "billing_address",
        "shipping_address",
    ),
)
ORDER_LINE = TableSpec(
    OrderLine, ("id", "order_id", "product_name", "sku", "quantity", "unit_price", "line_total")
)
NOTE = TableSpec(Note, ("id", "customer_id", "text", "author_id", "created_at"))
PUSH_SUBSCRIPTION = (
    TableSpec(
        PushSubscription,
        (
            "id",
            "customer_id",
            "endpoint",
            "p256dh",
            "auth",
            "user_agent",
            "status",
            "created_at",
            "last_success_at",
            "ended_at",
        ),
    )
    if PushSubscription is not None
    else None
)

# Parents before children, so that a writer without deferred constraints could load them too.
TABLES = tuple(t for t in (CUSTOMER, ADDRESS, ORDER, ORDER_LINE, NOTE, PUSH_SUBSCRIPTION) if t)

_FINALIZED = frozenset(str(s) for s in FINALIZED_STATUSES)
_TIME_OF_DAY = [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(DAY)]


def _money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


class DemoShop:
    """Generates customers with everything attached, chunk by chunk, as COPY-ready rows."""

    def __init__(
        self,
        *,
        seed: int,
        customers: int,
        first_ids: dict[type[models.Model], int],
        today: date,
        staff_id: int | None,
    ):
        self.rng = random.Random(seed)
        self.total = customers
        self.done = 0
        self.next_id = dict(first_ids)
        self.staff_id = str(staff_id) if staff_id else NULL
        self.currency = settings.SHOP_CURRENCY
        self.pools = build_pools(seed, customers)
        self.end = int(datetime(today.year, today.month, today.day, tzinfo=UTC).timestamp())
        # Account creations run from a little over three years ago until yesterday; customer
        # ids follow account creation, as they do in a real shop.
        self.start = self.end - YEARS_OF_HISTORY * 365 * DAY - 60 * DAY
        self._days: dict[int, str] = {}
        self.traffic = [(s, m, c) for s, m, c, _ in TRAFFIC]
        self.traffic_weights = [w for *_, w in TRAFFIC]
        self.counts = dict.fromkeys(TABLES, 0)

    # --- helpers -------------------------------------------------------------------------

    def _ts(self, t: int) -> str:
        day = t // DAY
        text = self._days.get(day)
        if text is None:
            text = self._days[day] = (date(1970, 1, 1) + timedelta(days=day)).isoformat()
        return f"{text} {_TIME_OF_DAY[t % DAY]}+00:00"

    def _ids(self, model, count: int) -> int:
        first = self.next_id[model]
        self.next_id[model] = first + count
        return first

    def _phone(self, country: str) -> str:
        n = self.rng.randrange(10**8)
        if country == "FR":
            return f"+33 {self.rng.choice('67')} {n // 10**6:02d} {n // 10**4 % 100:02d} " + (
                f"{n // 100 % 100:02d} {n % 100:02d}"
            )
        if country == "GB":
            return f"+44 7{n // 10**6 % 1000:03d} {n % 10**6:06d}"
        return f"+1 ({200 + n % 800}) {n // 1000 % 900 + 100}-{n // 10**5 % 10000:04d}"

    def _key(self, size: int) -> str:
        return base64.urlsafe_b64encode(self.rng.randbytes(size)).rstrip(b"=").decode()

    # --- one chunk -------------------------------------------------------------------------

    def chunk(self, size: int) -> dict[TableSpec, list[tuple[str, ...]]]:
        """The next `size` customers with their addresses, orders, lines, notes, subscriptions."""
        rng = self.rng
        random_ = rng.random
        rows = {table: [] for table in TABLES}
        customers, addresses, orders = rows[CUSTOMER], rows[ADDRESS], rows[ORDER]
        lines, notes = rows[ORDER_LINE], rows[NOTE]
        subscriptions = rows.get(PUSH_SUBSCRIPTION)
        span = self.end - DAY - self.start
        ts = self._ts
        for _ in range(size):
            index = self.done
            self.done += 1
            customer_id = self._ids(Customer, 1)
            pool = self._locale(random_())
            country = pool.country
            created = (
                self.start + span * index // self.total + rng.randrange(max(1, span // self.total))
            )
            is_client = random_() < 0.6

            # Contact details; a few accounts carry only an e-mail address.
            if random_() < 0.03:
                first = last = ""
                local = f"client{customer_id}"
            else:
                first = rng.choice(pool.female if random_() < 0.55 else pool.male)
                last = rng.choice(pool.last)
                fs, ls = pool.slugs[first], pool.slugs[last]
                style = random_()
                if style < 0.5:
                    local = f"{fs}.{ls}{customer_id}"
                elif style < 0.75:
                    local = f"{fs[:1]}{ls}{customer_id}"
                else:
                    local = f"{ls}.{fs}{customer_id}"
            email = f"{local}@{rng.choice(pool.domains)}"
            phone = self._phone(country) if random_() < 0.75 else ""

            # Address book: every client has one; half of the leads never entered one.
            has_address = is_client or random_() < 0.5
            book = []
            if has_address:
                n_addresses = 1 if random_() < 0.75 else (2 if random_() < 0.72 else 3)
                first_address = self._ids(Address, n_addresses)
                for k in range(n_addresses):
                    other = k > 0 and random_() < 0.3
                    postal_code, city, region = rng.choice(pool.places)
                    address = (
                        str(first_address + k),
                        str(customer_id),
                        (
                            f"{rng.choice(pool.female)} {rng.choice(pool.last)}"
                            if other or not first
                            else f"{first} {last}"
                        ),
                        rng.choice(pool.companies) if other else "",
                        rng.choice(pool.streets),
                        rng.choice(pool.second_lines) if random_() < 0.15 else "",
                        postal_code,
                        city,
                        region,
                        country,
                        phone if k == 0 else "",
                    )
                    addresses.append(address)
                    book.append(address)
                billing = book[0]
                shipping = book[1] if len(book) > 1 and random_() < 0.3 else billing
                billing_json = self._snapshot(billing)
                shipping_json = billing_json if shipping is billing else self._snapshot(shipping)

            # Orders: clients have at least one finalized purchase; some leads have an
            # abandoned (pending) or cancelled order.
            if is_client:
                n_orders = min(40, 1 + int(rng.expovariate(1 / 4.3)))
            elif has_address and random_() < 0.2:
                n_orders = 1 if random_() < 0.8 else 2
            else:
                n_orders = 0
            stats = None
            if n_orders:
                stats = self._orders(
                    rng,
                    customer_id,
                    created,
                    n_orders,
                    is_client,
                    billing_json,
                    shipping_json,
                    orders,
                    lines,
                )

            # Push notifications accepted on about 30% of the accounts.
            push_opt_in = False
            if subscriptions is not None:
                push_opt_in = self._subscriptions(rng, customer_id, created, subscriptions)

            if random_() < 0.12:
                self._notes(rng, customer_id, created, notes)

            if stats:
                count, spent, first_at, last_at, last_id, last_source, last_medium = stats
            else:
                count, spent, first_at, last_at, last_id, last_source, last_medium = (
                    0,
                    0,
                    None,
                    None,
                    None,
                    "",
                    "",
                )
            customers.append(
                (
                    str(customer_id),
                    email,
                    first,
                    last,
                    phone,
                    ts(created),
                    book[0][0] if book else NULL,
                    (shipping[0] if book else NULL),
                    str(count),
                    _money(spent),
                    ts(first_at) if first_at is not None else NULL,
                    ts(last_at) if last_at is not None else NULL,
                    str(last_id) if last_id is not None else NULL,
                    last_source,
                    last_medium,
                    country if book else "",
                    "t" if push_opt_in else "f",
                    customer_search_text(
                        pk=customer_id, first_name=first, last_name=last, email=email, phone=phone
                    ),
                )
            )
        for table, table_rows in rows.items():
            self.counts[table] += len(table_rows)
        return rows

    def _locale(self, draw: float) -> LocalePool:
        for pool, share in self.pools:
            if draw < share:
                return pool
            draw -= share
        return self.pools[0][0]

    @staticmethod
    def _snapshot(address: tuple[str, ...]) -> str:
        return json.dumps(dict(zip(ADDRESS_FIELDS, address[2:11], strict=True)), ensure_ascii=False)

    def _orders(
        self,
        rng,
        customer_id,
        created,
        n_orders,
        is_client,
        billing_json,
        shipping_json,
        orders,
        lines,
    ):
        """Append the customer's orders and lines; return its statistics (or None)."""
        end = self.end - 60
        times = sorted(rng.randrange(created + 600, end) for _ in range(n_orders))
        statuses = [self._status(rng, t, is_client) for t in times]
        if is_client and not any(s in _FINALIZED for s in statuses):
            statuses[rng.randrange(n_orders)] = OrderStatus.FULFILLED.value
        first_order = self._ids(Order, n_orders)
        ts = self._ts
        count = spent = 0
        first_at = last_at = last_id = None
        last_source = last_medium = ""
        for k in range(n_orders):
            order_id = first_order + k
            placed, status = times[k], statuses[k]
            n_lines = rng.choices((1, 2, 3, 4), (50, 27, 15, 8))[0]
            first_line = self._ids(OrderLine, n_lines)
            subtotal = 0
            for j, (name, sku, price) in enumerate(rng.sample(PRODUCTS, n_lines)):
                quantity = 1 if rng.random() < 0.82 else rng.choice((2, 2, 3))
                line_total = price * quantity
                subtotal += line_total
                lines.append(
                    (
                        str(first_line + j),
                        str(order_id),
                        name,
                        sku,
                        str(quantity),
                        _money(price),
                        _money(line_total),
                    )
                )
            discount = subtotal // 10 if rng.random() < 0.12 else 0
            shipping = 0 if subtotal >= 6000 else rng.choice((490, 590))
            tax = (subtotal - discount) // 5  # 20% VAT on the discounted goods
            total = subtotal + shipping + tax - discount
            if status == OrderStatus.REFUNDED:
                refunded = total
            elif status in _FINALIZED and rng.random() < 0.05:
                refunded = max(1, total * rng.randrange(5, 60) // 100)  # partial refund
            else:
                refunded = 0
            source, medium, campaigns = rng.choices(self.traffic, self.traffic_weights)[0]
            campaign = rng.choice(campaigns)
            orders.append(
                (
                    str(order_id),
                    f"W{order_id:07d}",
                    str(customer_id),
                    ts(placed),
                    status,
                    self.currency,
                    _money(subtotal),
                    _money(shipping),
                    _money(tax),
                    _money(discount),
                    _money(total),
                    _money(refunded),
                    source,
                    medium,
                    campaign,
                    billing_json,
                    shipping_json,
                )
            )
            if status in _FINALIZED:
                count += 1
                spent += total - refunded
                if first_at is None:
                    first_at = placed
                # Times are sorted and ids ascending, so the last finalized one is the newest.
                last_at, last_id, last_source, last_medium = placed, order_id, source, medium
        if not count:
            return None
        return count, spent, first_at, last_at, last_id, last_source, last_medium

    def _status(self, rng, placed: int, is_client: bool) -> str:
        age_days = (self.end - placed) / DAY
        draw = rng.random()
        if not is_client:
            # A lead's orders were never paid: abandoned checkouts, or cancelled.
            return "pending" if draw < 0.4 else "cancelled"
        if age_days < 10:
            return ("pending", "paid", "fulfilled", "cancelled")[
                0 if draw < 0.2 else 1 if draw < 0.55 else 2 if draw < 0.95 else 3
            ]
        if draw < 0.80:
            return "fulfilled"
        if draw < 0.88:
            return "cancelled"
        if draw < 0.94:
            return "refunded"
        if draw < 0.97:
            return "pending"  # an abandoned checkout, never cleaned up
        return "paid" if age_days < 30 else "fulfilled"

    def _subscriptions(self, rng, customer_id, created, subscriptions) -> bool:
        draw = rng.random()
        if draw >= 0.34:
            return False
        active = draw < 0.30  # the other 4% once accepted, then the subscription ended
        devices = 1 if rng.random() < 0.85 else 2
        first = self._ids(PushSubscription, devices)
        for k in range(devices):
            since = rng.randrange(created, self.end - 60)
            ended = rng.randrange(since, self.end) if not active else None
            subscriptions.append(
                (
                    str(first + k),
                    str(customer_id),
                    # The id after a fixed-length random part keeps endpoints unique.
                    f"https://fcm.googleapis.com/fcm/send/{self._key(5)}{first + k:x}:"
                    f"APA91b{self._key(100)}",
                    # An uncompressed P-256 point (0x04 || X || Y) and a 16-byte secret.
                    base64.urlsafe_b64encode(b"\x04" + rng.randbytes(64)).rstrip(b"=").decode(),
                    self._key(16),
                    rng.choice(USER_AGENTS),
                    "active" if active else rng.choice(("expired", "unsubscribed")),
                    self._ts(since),
                    self._ts(rng.randrange(since, self.end)) if active else NULL,
                    self._ts(ended) if ended is not None else NULL,
                )
            )
        return active

    def _notes(self, rng, customer_id, created, notes) -> None:
        versions = rng.choices((1, 2, 3), (60, 28, 12))[0]
        first = self._ids(Note, versions)
        at = created
        text = ""
        for k in range(versions):
            at = rng.randrange(at + 60, max(at + 120, self.end - 60))
            sentence = rng.choice(NOTE_SENTENCES)
            text = f"{text} {sentence}".strip() if k else sentence
            author = self.staff_id if rng.random() < 0.85 else NULL
            notes.append((str(first + k), str(customer_id), text, author, self._ts(at)))


# --- Writers -------------------------------------------------------------------------------


class BulkCreateWriter:
    """Loads chunks with bulk_create, one transaction per chunk (SQLite and other databases)."""

    def __init__(self, using: str = "default"):
        self.using = using

    def write(self, rows: dict[TableSpec, list[tuple[str, ...]]]) -> None:
        with transaction.atomic(using=self.using):
            for table, table_rows in rows.items():
                table.model.objects.using(self.using).bulk_create(
                    table.instances(table_rows), batch_size=500
                )

    def close(self) -> None:
        pass


class CopyWriter:
    """Loads chunks with PostgreSQL COPY from a second thread, while the next chunk is generated.

    The generator is pure Python and the COPY is the database's work, so on two cores the two
    overlap. Each chunk is one transaction: whatever was committed is a consistent shop (every
    customer with all its rows), and foreign keys are checked at each commit.
    """

    def __init__(self, using: str = "default"):
        self.using = using
        self.queue: queue.Queue = queue.Queue(maxsize=2)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="seed-demo-copy", daemon=True)
        self.thread.start()

    def write(self, rows: dict[TableSpec, list[tuple[str, ...]]]) -> None:
        # Formatting the COPY text stays in this thread: the writer thread only waits on I/O.
        payload = [(table, table.copy_text(table_rows)) for table, table_rows in rows.items()]
        self._check()
        self.queue.put(payload)

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()
        self._check()

    def _check(self) -> None:
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        connection = connections[self.using]
        try:
            with connection.cursor() as cursor:
                # Losing the last chunks in a crash is fine for demo data; waiting for every
                # commit to reach the disk is not.
                cursor.execute("SET synchronous_commit = off")
            while (payload := self.queue.get()) is not None:
                if self.error is not None:
                    continue
                with transaction.atomic(using=self.using), connection.cursor() as cursor:
                    for table, text in payload:
                        columns = ", ".join(connection.ops.quote_name(c) for c in table.columns)
                        name = connection.ops.quote_name(table.table)
                        with cursor.copy(f"COPY {name} ({columns}) FROM STDIN") as copy:
                            copy.write(text)
        except BaseException as error:  # re-raised in the main thread
            self.error = error
            while self.queue.get() is not None:
                pass
        finally:
            connection.close()


def writer_for(using: str = "default"):
    if connections[using].vendor == "postgresql":
        return CopyWriter(using)
    return BulkCreateWriter(using)


def first_free_ids(using: str = "default") -> dict[type[models.Model], int]:
    """Where the new rows' ids start: after every existing row of each table."""
    return {
        table.model: (table.model.objects.using(using).aggregate(m=Max("pk"))["m"] or 0) + 1
        for table in TABLES
    }


def reset_sequences(using: str = "default") -> None:
    """Point the id sequences past the explicit ids the load wrote (a no-op on SQLite)."""
    connection = connections[using]
    statements = connection.ops.sequence_reset_sql(no_style(), [t.model for t in TABLES])
    with connection.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql)
