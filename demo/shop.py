"""Demo data: a believable shop, generated fast enough for a million customers.

Faker is called only to fill pools (names, streets, towns, e-mail domains) once per run; rows are
then combined from the pools with a seeded `random.Random`, so a million customers cost seconds
of Python instead of hours of Faker calls, and the same seed gives the same shop.

Every value is produced as PostgreSQL COPY text (the fast path); SQLite receives the same rows
through `bulk_create` (see `TableSpec.instances`). The customers' stored statistics, search text
and country are computed here from the very rows generated, so they are exact from the start
(`rebuild_customer_stats --check` reports no drift).
"""

import json
import queue
import random
import re
import threading
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from django.conf import settings
from django.core.management.color import no_style
from django.db import connections, models, transaction
from django.db.models import Max
from faker import Faker

from clients.models import ADDRESS_FIELDS, LATEST_ORDER_DATES, Address, Customer, Note
from clients.search import customer_search_text, normalize
from demo.push_service import demo_endpoint_base, demo_subscription_keys
from notifications.models import PushSubscription
from orders.models import FINALIZED_STATUSES, Order, OrderLine

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


def _json(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


@dataclass
class LocalePool:
    """One locale's names and places, each kept with what the generator derives from it."""

    country: str
    female: list[str]
    male: list[str]
    last: list[str]
    # Every name's e-mail slug and search form ("Éloïse" -> "eloise", "éloïse").
    slugs: dict[str, str]
    search_forms: dict[str, str]
    # Address parts as COPY text and as JSON members of the order's address snapshot.
    streets: list[tuple[str, str]]
    second_lines: list[tuple[str, str]]
    places: list[tuple[str, str]]
    companies: list[tuple[str, str]]
    domains: list[str]


def _unique(make, count: int, tries: int = 3) -> list[str]:
    values = dict.fromkeys(_clean(make()) for _ in range(count * tries))
    return [v for v in values if v][:count]


def build_pools(seed: int, scale: int) -> list[tuple[LocalePool, float]]:
    """Names, streets and towns from Faker, sized for `scale` customers (a few thousand max)."""
    size = max(40, min(1000, scale // 2))
    pools = []
    for index, (locale, country, share) in enumerate(LOCALES):
        fake = Faker(locale)
        fake.seed_instance(seed * 31 + index)
        region = getattr(fake, {"FR": "region", "GB": "county"}.get(country, "state_abbr"))
        female = _unique(fake.first_name_female, min(size, 200))
        male = _unique(fake.first_name_male, min(size, 200))
        last = _unique(fake.last_name, min(size, 500))
        if country == "FR":
            second_lines = [f"Appartement {n}" for n in range(1, 40)] + [
                f"Bâtiment {c}" for c in "ABCDE"
            ]
        else:
            second_lines = _unique(fake.secondary_address, 40)
        places = []
        for _ in range(size):
            postal_code, city, area = _clean(fake.postcode()), _clean(fake.city()), _clean(region())
            places.append(
                (
                    f"{postal_code}\t{city}\t{area}",
                    f'"postal_code": {_json(postal_code)}, "city": {_json(city)}, '
                    f'"region": {_json(area)}',
                )
            )
        names = (*female, *male, *last)
        pools.append(
            (
                LocalePool(
                    country=country,
                    female=female,
                    male=male,
                    last=last,
                    slugs={name: _slug(name) for name in names},
                    search_forms={name: normalize(name) for name in names},
                    streets=[(v, _json(v)) for v in _unique(fake.street_address, size, 1)],
                    second_lines=[(v, _json(v)) for v in second_lines],
                    places=places,
                    companies=[(v, _json(v)) for v in _unique(fake.company, 60)],
                    domains=_unique(fake.free_email_domain, 8, tries=20),
                ),
                share,
            )
        )
    return pools


class TableSpec:
    """The columns the generator fills for one model; every other column gets its default.

    A generated row is one string: the generated columns in order, tab-separated, as COPY's
    text format wants them (`\\N` for NULL). Generated values never contain a tab, newline or
    backslash, so no escaping is needed.
    """

    def __init__(self, model: type[models.Model], attnames: tuple[str, ...]):
        self.model = model
        self.attnames = attnames
        fields = {f.attname: f for f in model._meta.concrete_fields}
        self.fields = [fields[name] for name in attnames]
        self.table = model._meta.db_table
        rest = [f for f in fields.values() if f.attname not in attnames]
        self.default_values = {f.attname: f.get_default() for f in rest}
        # COPY leaves out the columns the database fills itself (db_default, such as
        # Customer.updated_at): their Python default is an expression, not a value.
        copied = [f for f in rest if f.db_default is models.NOT_PROVIDED]
        self.columns = [f.column for f in self.fields] + [f.column for f in copied]
        suffix = "".join("\t" + _copy_text(f, self.default_values[f.attname]) for f in copied)
        self.line_suffix = suffix + "\n"

    def copy_text(self, rows: list[str]) -> str:
        suffix = self.line_suffix
        return suffix.join(rows) + suffix if rows else ""

    def instances(self, rows: list[str]) -> list[models.Model]:
        """The rows as model instances for bulk_create (the SQLite path)."""
        converters = [_python_value(f) for f in self.fields]
        names = self.attnames
        result = []
        for row in rows:
            values = dict(self.default_values)
            for name, convert, value in zip(names, converters, row.split("\t"), strict=True):
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
        *LATEST_ORDER_DATES[1:],
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
PUSH_SUBSCRIPTION = TableSpec(
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

# Parents before children, so that a writer without deferred constraints could load them too.
TABLES = tuple(t for t in (CUSTOMER, ADDRESS, ORDER, ORDER_LINE, NOTE, PUSH_SUBSCRIPTION) if t)

_FINALIZED = frozenset(str(s) for s in FINALIZED_STATUSES)
_TIME_OF_DAY = [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(DAY)]
BASKETS = 4096
TRAFFIC_TABLE = 1000


def _money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def _phone_search_variants(phone: str, country: str) -> list[str]:
    """The digit strings clients.search.phone_variants gives for the numbers made here.

    (The real function parses each number with `phonenumbers`, far too slow for a million
    rows; every chunk checks a sample against it and falls back to it on any difference.)
    """
    digits = "".join(c for c in phone if c.isdigit())
    national = digits[1:] if country == "US" else "0" + digits[2:]
    return sorted({digits, national})


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
        self.counts = dict.fromkeys(TABLES, 0)
        self.exact_search_text = False
        self.traffic = self._traffic_table()
        self.baskets = [self._basket() for _ in range(BASKETS)]
        self.keys = self._key_pools()
        # Demo subscriptions point at the demo push service on this machine, never the internet.
        self.endpoint_base = demo_endpoint_base(settings.PUSH_DEMO_SERVICE_PORT)

    # --- pools of whole values ----------------------------------------------------------------

    def _traffic_table(self) -> list[tuple[str, str, str]]:
        """(COPY text of source/medium/campaign, source, medium), drawn by weight."""
        table = []
        for _ in range(TRAFFIC_TABLE):
            source, medium, campaigns, _weight = self.rng.choices(
                TRAFFIC, [w for *_, w in TRAFFIC]
            )[0]
            campaign = self.rng.choice(campaigns)
            table.append((f"{source}\t{medium}\t{campaign}", source, medium))
        return table

    def _basket(self) -> tuple[tuple[str, ...], str, int]:
        """A basket: its lines as COPY text (after the ids), its amounts, its total in cents."""
        rng = self.rng
        n_lines = rng.choices((1, 2, 3, 4), (50, 27, 15, 8))[0]
        lines, subtotal = [], 0
        for name, sku, price in rng.sample(PRODUCTS, n_lines):
            quantity = 1 if rng.random() < 0.82 else rng.choice((2, 2, 3))
            subtotal += price * quantity
            lines.append(f"{name}\t{sku}\t{quantity}\t{_money(price)}\t{_money(price * quantity)}")
        discount = subtotal // 10 if rng.random() < 0.12 else 0
        shipping = 0 if subtotal >= 6000 else rng.choice((490, 590))
        tax = (subtotal - discount) // 5  # 20% VAT on the discounted goods
        total = subtotal + shipping + tax - discount
        amounts = "\t".join(_money(c) for c in (subtotal, shipping, tax, discount, total))
        return tuple(lines), amounts, total

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
        n = int(self.rng.random() * 10**8)
        if country == "FR":
            return (
                f"+33 {6 + n % 2} {n // 10**6:02d} {n // 10**4 % 100:02d} "
                f"{n // 100 % 100:02d} {n % 100:02d}"
            )
        if country == "GB":
            return f"+44 7{n // 10**5 % 1000:03d} {n % 10**6:06d}"
        return f"+1 ({200 + n % 800}) {n // 1000 % 900 + 100}-{n // 10**5 % 10000:04d}"

    def _locale(self, draw: float) -> LocalePool:
        for pool, share in self.pools:
            if draw < share:
                return pool
            draw -= share
        return self.pools[0][0]

    # --- one chunk -------------------------------------------------------------------------

    def chunk(self, size: int) -> dict[TableSpec, list[str]]:
        """The next `size` customers with their addresses, orders, lines, notes, subscriptions."""
        rng = self.rng
        rand = rng.random
        rows = {table: [] for table in TABLES}
        addresses, notes = rows[ADDRESS], rows[NOTE]
        subscriptions = rows.get(PUSH_SUBSCRIPTION)
        customers = []  # tuples until the search text is checked
        span = self.end - DAY - self.start
        step = max(1, span // max(1, self.total))
        ts = self._ts
        for _ in range(size):
            index = self.done
            self.done += 1
            customer_id = self._ids(Customer, 1)
            pool = self._locale(rand())
            country = pool.country
            created = self.start + span * index // self.total + int(rand() * step)
            is_client = rand() < 0.6

            # Contact details; a few accounts carry only an e-mail address.
            if rand() < 0.03:
                first = last = ""
                local = f"client{customer_id}"
            else:
                names = pool.female if rand() < 0.55 else pool.male
                first = names[int(rand() * len(names))]
                last = pool.last[int(rand() * len(pool.last))]
                fs, ls = pool.slugs[first], pool.slugs[last]
                style = rand()
                # The id in the address keeps e-mails unique (slugs hold no digits).
                if style < 0.5:
                    local = f"{fs}.{ls}{customer_id}"
                elif style < 0.75:
                    local = f"{fs[:1]}{ls}{customer_id}"
                else:
                    local = f"{ls}.{fs}{customer_id}"
            email = f"{local}@{pool.domains[int(rand() * len(pool.domains))]}"
            phone = self._phone(country) if rand() < 0.75 else ""

            # Address book: every client has one; half of the leads never entered one.
            billing_id = shipping_id = NULL
            snapshots = ""
            if is_client or rand() < 0.5:
                billing_id, shipping_id, snapshots = self._addresses(
                    pool, customer_id, first, last, phone, addresses
                )

            # Orders: clients have at least one finalized purchase; some leads have an
            # abandoned (pending) or cancelled order.
            if is_client:
                n_orders = min(40, 1 + int(rng.expovariate(1 / 4.3)))
            elif snapshots and rand() < 0.2:
                n_orders = 1 if rand() < 0.8 else 2
            else:
                n_orders = 0
            stats = (
                self._orders(customer_id, created, n_orders, is_client, snapshots, rows)
                if n_orders
                else None
            )

            # Push notifications accepted on about 30% of the accounts.
            push_opt_in = False
            if subscriptions is not None:
                push_opt_in = self._subscriptions(customer_id, created, subscriptions)
            if rand() < 0.12:
                self._notes(customer_id, created, notes)

            if stats:
                count, spent, first_at, last_at, last_id, source, medium, earlier = stats
                stats_text = (
                    f"{count}\t{_money(spent)}\t{ts(first_at)}\t{ts(last_at)}\t{last_id}\t"
                    f"{source}\t{medium}\t"
                    + "\t".join(NULL if at is None else ts(at) for at in earlier)
                )
            else:
                stats_text = f"0\t0.00\t{NULL}\t{NULL}\t{NULL}\t\t\t" + "\t".join(
                    [NULL] * (len(LATEST_ORDER_DATES) - 1)
                )
            search_parts = [
                str(customer_id),
                pool.search_forms[first] if first else "",
                pool.search_forms[last] if last else "",
                email,
            ]
            if phone:
                search_parts += [phone, *_phone_search_variants(phone, country)]
            customers.append(
                (
                    customer_id,
                    email,
                    first,
                    last,
                    phone,
                    f"{ts(created)}\t{billing_id}\t{shipping_id}\t{stats_text}\t"
                    f"{country if snapshots else ''}\t{'t' if push_opt_in else 'f'}",
                    " ".join(p for p in search_parts if p),
                )
            )
        self._check_search_text(customers)
        rows[CUSTOMER] = [
            f"{row[0]}\t{row[1]}\t{row[2]}\t{row[3]}\t{row[4]}\t{row[5]}\t{row[6]}"
            for row in customers
        ]
        for table, table_rows in rows.items():
            self.counts[table] += len(table_rows)
        return rows

    def _check_search_text(self, customers: list[tuple]) -> None:
        """Make sure the fast search text is exactly clients.search's; else use the latter."""

        def exact(row):
            return customer_search_text(
                pk=row[0], first_name=row[2], last_name=row[3], email=row[1], phone=row[4]
            )

        if not self.exact_search_text:
            sample = customers[:: max(1, len(customers) // 50)]
            self.exact_search_text = any(row[6] != exact(row) for row in sample)
        if self.exact_search_text:
            customers[:] = [(*row[:6], exact(row)) for row in customers]

    def _addresses(self, pool, customer_id, first, last, phone, addresses):
        """Append the customer's address book; return the default ids and order snapshots."""
        rand = self.rng.random
        count = 1 if rand() < 0.75 else (2 if rand() < 0.72 else 3)
        first_id = self._ids(Address, count)
        snapshots = []
        for k in range(count):
            other = k > 0 and rand() < 0.3
            if other or not first:
                name = (
                    f"{pool.female[int(rand() * len(pool.female))]} "
                    f"{pool.last[int(rand() * len(pool.last))]}"
                )
            else:
                name = f"{first} {last}"
            company, company_json = (
                pool.companies[int(rand() * len(pool.companies))] if other else ("", '""')
            )
            street, street_json = pool.streets[int(rand() * len(pool.streets))]
            line2, line2_json = (
                pool.second_lines[int(rand() * len(pool.second_lines))]
                if rand() < 0.15
                else ("", '""')
            )
            place, place_json = pool.places[int(rand() * len(pool.places))]
            address_phone = phone if k == 0 else ""
            addresses.append(
                f"{first_id + k}\t{customer_id}\t{name}\t{company}\t{street}\t{line2}\t{place}\t"
                f"{pool.country}\t{address_phone}"
            )
            # The order's frozen copy of the address (Address.as_snapshot).
            snapshots.append(
                f'{{"name": {_json(name)}, "company": {company_json}, "line1": {street_json}, '
                f'"line2": {line2_json}, {place_json}, "country": "{pool.country}", '
                f'"phone": "{address_phone}"}}'
            )
        shipping = 1 if count > 1 and rand() < 0.3 else 0
        return (
            str(first_id),
            str(first_id + shipping),
            f"{snapshots[0]}\t{snapshots[shipping]}",
        )

    def _orders(self, customer_id, created, n_orders, is_client, snapshots, rows):
        """Append the customer's orders and lines; return its statistics (or None)."""
        rand = self.rng.random
        orders, lines = rows[ORDER], rows[ORDER_LINE]
        window = self.end - 60 - (created + 600)
        times = sorted(created + 600 + int(rand() * window) for _ in range(n_orders))
        statuses = [self._status(t, is_client) for t in times]
        if is_client and not any(s in _FINALIZED for s in statuses):
            statuses[int(rand() * n_orders)] = "fulfilled"
        first_order = self._ids(Order, n_orders)
        ts, baskets, traffic, currency = self._ts, self.baskets, self.traffic, self.currency
        count = spent = 0
        first_at = last_at = last_id = None
        # The dates of the finalized orders before the last, newest first (LATEST_ORDER_DATES).
        earlier = [None] * (len(LATEST_ORDER_DATES) - 1)
        last_source = last_medium = ""
        for k in range(n_orders):
            order_id = first_order + k
            placed, status = times[k], statuses[k]
            basket_lines, amounts, total = baskets[int(rand() * BASKETS)]
            line_id = self._ids(OrderLine, len(basket_lines))
            for j, line in enumerate(basket_lines):
                lines.append(f"{line_id + j}\t{order_id}\t{line}")
            if status == "refunded":
                refunded = total
            elif status in _FINALIZED and rand() < 0.05:
                refunded = max(1, int(total * (0.05 + rand() * 0.55)))  # partial refund
            else:
                refunded = 0
            traffic_text, source, medium = traffic[int(rand() * TRAFFIC_TABLE)]
            orders.append(
                f"{order_id}\tW{order_id:07d}\t{customer_id}\t{ts(placed)}\t{status}\t{currency}\t"
                f"{amounts}\t{_money(refunded)}\t{traffic_text}\t{snapshots}"
            )
            if status in _FINALIZED:
                count += 1
                spent += total - refunded
                if first_at is None:
                    first_at = placed
                # Times are sorted and ids ascending, so the last finalized one is the newest.
                earlier = [last_at, *earlier[:-1]]
                last_at, last_id, last_source, last_medium = placed, order_id, source, medium
        if not count:
            return None
        return count, spent, first_at, last_at, last_id, last_source, last_medium, earlier

    def _status(self, placed: int, is_client: bool) -> str:
        draw = self.rng.random()
        if not is_client:
            # A lead's orders were never paid: abandoned checkouts, or cancelled.
            return "pending" if draw < 0.4 else "cancelled"
        age_days = (self.end - placed) / DAY
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

    def _key_pools(self) -> list[str]:
        """The subscriptions' keys as COPY text ("p256dh\tauth"), one per demo key pair.

        They are the demo push service's fixed pool of real P-256 key pairs, so that service
        (`manage.py run_demo_push_service`, started by `make run`) decrypts every demo campaign;
        each endpoint names its pair (demo/push_service.py).
        """
        return [f"{p256dh}\t{auth}" for p256dh, auth in demo_subscription_keys()]

    def _subscriptions(self, customer_id, created, subscriptions) -> bool:
        rng = self.rng
        rand = rng.random
        draw = rand()
        if draw >= 0.34:
            return False
        active = draw < 0.30  # the other 4% once accepted, then the subscription ended
        devices = 1 if rand() < 0.85 else 2
        first = self._ids(PushSubscription, devices)
        keys = self.keys
        endpoint_base = self.endpoint_base
        for k in range(devices):
            key_index = int(rand() * len(keys))
            since = created + int(rand() * (self.end - 60 - created))
            moment = self._ts(since + int(rand() * (self.end - since)))
            if active:
                state, ended, last_success = "active", NULL, moment
            else:
                state = "expired" if rand() < 0.5 else "unsubscribed"
                ended, last_success = moment, NULL
            subscriptions.append(
                # The subscription id in the endpoint keeps endpoints unique.
                f"{first + k}\t{customer_id}\t{endpoint_base}{first + k:x}-{key_index}\t"
                f"{keys[key_index]}\t"
                f"{USER_AGENTS[int(rand() * len(USER_AGENTS))]}\t{state}\t"
                f"{self._ts(since)}\t{last_success}\t{ended}"
            )
        return active

    def _notes(self, customer_id, created, notes) -> None:
        rng = self.rng
        versions = rng.choices((1, 2, 3), (60, 28, 12))[0]
        first = self._ids(Note, versions)
        at = created
        text = ""
        for k in range(versions):
            at = rng.randrange(at + 60, max(at + 120, self.end - 60))
            sentence = rng.choice(NOTE_SENTENCES)
            text = f"{text} {sentence}" if k else sentence
            author = self.staff_id if rng.random() < 0.85 else NULL
            notes.append(f"{first + k}\t{customer_id}\t{text}\t{author}\t{self._ts(at)}")


# --- Writers -------------------------------------------------------------------------------


class BulkCreateWriter:
    """Loads chunks with bulk_create, one transaction per chunk (SQLite and other databases)."""

    def __init__(self, using: str = "default"):
        self.using = using

    def write(self, rows: dict[TableSpec, list[str]]) -> None:
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
    overlap. Two modes:

    - per chunk (small loads, or `bulk=False`): each chunk is one transaction, every index and
      foreign key checked as rows arrive; whatever was committed is a consistent shop.
    - bulk (large loads): the whole load is one transaction that drops the loaded tables'
      secondary indexes and foreign keys, COPYs every chunk, then recreates them from the
      definitions read from the catalog, as pg_restore does. Maintaining twenty indexes (a
      trigram one among them) row by row made the customers alone take six minutes per
      million; building them once takes seconds, and re-adding a foreign key checks it with
      one join. DDL is transactional, so an interrupted load leaves the schema untouched.
      The tables are locked until the load commits.
    """

    def __init__(self, using: str = "default", *, bulk: bool = False, before_indexes=None):
        self.using = using
        self.bulk = bulk
        # Bulk mode: called in the load's transaction once every row is in, before the
        # indexes are rebuilt (an UPDATE of every customer then writes no index entry).
        self.before_indexes = before_indexes
        self.queue: queue.Queue = queue.Queue(maxsize=2)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="seed-demo-copy", daemon=True)
        self.thread.start()

    def write(self, rows: dict[TableSpec, list[str]]) -> None:
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
            if self.bulk:
                with transaction.atomic(using=self.using), connection.cursor() as cursor:
                    cursor.execute("SET LOCAL maintenance_work_mem = '512MB'")
                    restore = self._drop_secondary(cursor)
                    while (payload := self.queue.get()) is not None:
                        self._copy(connection, cursor, payload)
                    if self.before_indexes is not None:
                        self.before_indexes()
                    for statement in restore:
                        cursor.execute(statement)
            else:
                while (payload := self.queue.get()) is not None:
                    with transaction.atomic(using=self.using), connection.cursor() as cursor:
                        self._copy(connection, cursor, payload)
        except BaseException as error:  # re-raised in the main thread
            self.error = error
            while self.queue.get() is not None:
                pass
        finally:
            connection.close()

    @staticmethod
    def _copy(connection, cursor, payload) -> None:
        for table, text in payload:
            columns = ", ".join(connection.ops.quote_name(c) for c in table.columns)
            name = connection.ops.quote_name(table.table)
            with cursor.copy(f"COPY {name} ({columns}) FROM STDIN") as copy:
                copy.write(text)

    @staticmethod
    def _drop_secondary(cursor) -> list[str]:
        """Drop the loaded tables' indexes (but primary keys and unique constraints) and
        foreign keys; return the statements that recreate them exactly."""
        tables = [t.table for t in TABLES]
        cursor.execute(
            """
            SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
            FROM pg_index i
            WHERE i.indrelid = ANY(%s::regclass[])
              AND NOT EXISTS (
                  SELECT 1 FROM pg_constraint c
                  WHERE c.conindid = i.indexrelid AND c.contype IN ('p', 'u', 'x')
              )
            """,
            [tables],
        )
        indexes = cursor.fetchall()
        cursor.execute(
            """
            SELECT conrelid::regclass::text, quote_ident(conname), pg_get_constraintdef(oid)
            FROM pg_constraint
            WHERE contype = 'f' AND conrelid = ANY(%s::regclass[])
            """,
            [tables],
        )
        foreign_keys = cursor.fetchall()
        for table, name, _definition in foreign_keys:
            cursor.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
        for name, _definition in indexes:
            cursor.execute(f"DROP INDEX {name}")
        return [definition for _name, definition in indexes] + [
            f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}"
            for table, name, definition in foreign_keys
        ]


# Loads of this many customers or more use CopyWriter's bulk mode.
BULK_LOAD_CUSTOMERS = 50_000


def writer_for(using: str = "default", *, bulk: bool = False, before_indexes=None):
    """The loader for this database; `before_indexes` runs in a bulk load's transaction before
    the indexes are rebuilt (CopyWriter), else never: the caller then runs it after the load."""
    if connections[using].vendor == "postgresql":
        return CopyWriter(using, bulk=bulk, before_indexes=before_indexes)
    return BulkCreateWriter(using)


def vacuum_analyze(using: str = "default") -> None:
    """Vacuum and analyze the loaded tables (PostgreSQL; SQLite: analyze only).

    Fresh planner statistics, so the lists use their indexes right away; and on PostgreSQL a
    current visibility map: rows just loaded are not yet known to be visible to every
    transaction, so an index-only scan visits the heap for each of them. A deep page (offset
    ~300,000, read from the sort's index) took 565 ms instead of 26 ms on an unvacuumed load.
    """
    connection = connections[using]
    names = ", ".join(connection.ops.quote_name(table.table) for table in TABLES)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql" and not connection.in_atomic_block:
            cursor.execute(f"VACUUM (ANALYZE) {names}")
        elif connection.vendor == "postgresql":  # inside a transaction VACUUM cannot run
            cursor.execute(f"ANALYZE {names}")
        else:
            for table in TABLES:
                cursor.execute(f"ANALYZE {connection.ops.quote_name(table.table)}")


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
