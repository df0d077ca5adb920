"""Every URL of the project, found through the URL resolver, with real objects to fill them.

Used by the permission matrix (tests/test_permissions.py) and the hostile-input test
(tests/test_hostile_input.py). A route added to any urls.py shows up here by itself; the
tests then fail until it has an entry in their tables.
"""

import functools
import hashlib
import re
from dataclasses import dataclass
from datetime import timedelta

from cryptography.hazmat.primitives import serialization
from django.apps import apps
from django.contrib.auth.models import User
from django.db import connection
from django.middleware.csrf import _get_new_csrf_string
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone
from py_vapid import Vapid
from py_vapid.utils import b64urlencode

from clients.services import note_save
from exports.models import Export
from notifications.models import Campaign, PushSubscription
from notifications.tokens import click_token, storefront_token_issue
from privacy.models import ArchiveStatus, DataArchive, ErasureRequest
from privacy.services import erasure_request
from segments.models import Segment
from segments.services import segment_create
from storefront.models import ApiKey
from storefront.services import api_key_create
from tags.models import Tag, TagJob
from tags.services import customer_set_tags, tag_job_create
from tests.factories import AddressFactory, CustomerFactory, UserFactory, make_order

ROLES = ("anonymous", "Viewer", "Staff", "Admin")
ADMIN_NAMESPACE = "admin"

# Text only staff may see: none of it may appear in a response reachable without logging in.
SECRETS = {
    "note": "Confidential: prefers deliveries after 6pm, door code 4417",
    "email": "zelda.quixote-private@example.org",
    "last_name": "Quixotezelda",
    "phone": "+33 6 98 76 54 32",
}


@dataclass(frozen=True)
class Route:
    name: str  # "namespace:name", or the route itself for an unnamed pattern
    route: str  # the pattern as written, e.g. "clients/<int:pk>/"
    pattern: URLPattern
    namespace: str

    @property
    def parameters(self) -> list[str]:
        return list(self.pattern.pattern.regex.groupindex)


def discover_routes() -> list[Route]:
    """Every URL pattern of the project, following includes."""

    def walk(patterns, prefix: str, namespace: str):
        for entry in patterns:
            if isinstance(entry, URLResolver):
                inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
                yield from walk(entry.url_patterns, prefix + str(entry.pattern), inner)
            elif isinstance(entry, URLPattern):
                route = prefix + str(entry.pattern)
                name = f"{namespace}{entry.name}" if entry.name else route
                yield Route(name, route, entry, namespace.rstrip(":"))

    return list(walk(get_resolver().url_patterns, "", ""))


@dataclass
class World:
    """One of everything a URL can point at, and a user per role."""

    customer: object
    address: object
    order: object
    campaign: Campaign
    subscription: PushSubscription
    users: dict
    api_key: ApiKey
    export: Export
    tag: Tag
    segment: Segment
    tag_job: TagJob

    @classmethod
    def create(cls) -> "World":
        customer = CustomerFactory(
            email=SECRETS["email"],
            last_name=SECRETS["last_name"],
            phone=SECRETS["phone"],
            push_opt_in=True,
        )
        address = AddressFactory(customer=customer, name=f"Mme {SECRETS['last_name']}")
        customer.default_billing_address = address
        customer.default_shipping_address = address
        customer.save()
        order = make_order(customer, total="42.00")
        users = {role: UserFactory(role=role) for role in ROLES[1:]}
        note_save(customer=customer, actor=users["Staff"], text=SECRETS["note"], based_on=None)
        now = timezone.now()
        campaign = Campaign.objects.create(
            title="Spring sale",
            body="Everything at -20%",
            link="https://shop.example.com/spring",
            audience_tab="clients",
            audience_kind="all",
            public_base_url="https://backoffice.example.com/",
            created_at=now,
            created_by=users["Admin"],
            send_at=now + timedelta(days=1),
        )
        subscription = PushSubscription.objects.create(
            customer=customer,
            endpoint="https://push.example.net/send/abc123",
            p256dh="B" + "A" * 86,
            auth="QUFBQUFBQUFBQUFBQUFBQQ",
            created_at=now,
        )
        api_key, _ = api_key_create(name="Shop", scopes=["read"], actor=users["Admin"])
        # An XLSX export the Admin asked for, waiting for the task worker.
        export = Export.objects.create(
            requested_by=users["Admin"],
            requested_at=now,
            tab="clients",
            scope="all",
            sort="-last_order",
            file_format="xlsx",
            language="en",
        )
        tag = customer_set_tags(customer=customer, actor=users["Staff"], names=["VIP"])[0]
        segment = segment_create(
            actor=users["Staff"], name="VIPs", tab="clients", query=f"tags_any={tag.pk}"
        )
        tag_job = tag_job_create(
            actor=users["Staff"], action="add", names=["VIP"], tab="clients", ids=[], query=""
        )
        return cls(
            customer,
            address,
            order,
            campaign,
            subscription,
            users,
            api_key,
            export,
            tag,
            segment,
            tag_job,
        )

    def client(self, role: str, *, enforce_csrf: bool = False) -> Client:
        """A client logged in as `role` (or anonymous), carrying a valid CSRF cookie."""
        client = Client(enforce_csrf_checks=enforce_csrf)
        if role != "anonymous":
            client.force_login(self.users[role])
        client.csrf_token = _get_new_csrf_string()
        client.cookies["csrftoken"] = client.csrf_token
        return client


def _first_alternative(regex: str, group: str) -> str | None:
    """For an admin pattern like (?P<app_label>auth|clients), one accepted value."""
    match = re.search(rf"\(\?P<{group}>([^)]*)\)", regex)
    if match and re.fullmatch(r"[\w|]+", match.group(1)):
        return match.group(1).split("|")[0]
    return None


def import_job():
    """A checked import (the same one for every call of a test)."""
    from imports.models import ImportJob
    from tests.imports.pages import checked_job

    return ImportJob.objects.order_by("pk").first() or checked_job()


# Values for the parameters of each route, from the world's real objects.
ROUTE_KWARGS = {
    "clients:client-detail": lambda w: {"pk": w.customer.pk},
    "clients:contact-update": lambda w: {"pk": w.customer.pk},
    "clients:default-addresses-update": lambda w: {"pk": w.customer.pk},
    "clients:address-update": lambda w: {"pk": w.customer.pk, "address_pk": w.address.pk},
    "clients:note-update": lambda w: {"pk": w.customer.pk},
    "orders:order-detail": lambda w: {"number": w.order.number},
    "notifications:campaign-detail": lambda w: {"pk": w.campaign.pk},
    "notifications:campaign-cancel": lambda w: {"pk": w.campaign.pk},
    "exports:export-detail": lambda w: {"pk": w.export.pk},
    "exports:export-download": lambda w: {"pk": w.export.pk},
    "api-problem": lambda w: {"slug": "validation"},
    "storefront:apikey-revoke": lambda w: {"pk": w.api_key.pk},
    **{
        name: (lambda w: {"pk": w.segment.pk})
        for name in (
            "segments:segment-detail",
            "segments:segment-rename",
            "segments:segment-delete",
        )
    },
    **{
        name: (lambda w: {"pk": w.tag.pk})
        for name in ("tags:tag-rename", "tags:tag-merge", "tags:tag-delete")
    },
    "tags:customer-tags-update": lambda w: {"pk": w.customer.pk},
    "tags:job-detail": lambda w: {"pk": w.tag_job.pk},
    "api:customer-detail": lambda w: {"customer_id": w.customer.pk},
    "api:customer-update": lambda w: {"customer_id": w.customer.pk},
    "api:customer-launches": lambda w: {"customer_id": w.customer.pk},
    "api:address-list": lambda w: {"customer_id": w.customer.pk},
    "api:address-create": lambda w: {"customer_id": w.customer.pk},
    **{
        name: (lambda w: {"number": w.order.number})
        for name in (
            "api:order-detail",
            "api:order-pay",
            "api:order-fulfil",
            "api:order-cancel",
            "api:order-refund",
        )
    },
    **{
        name: (lambda w: {"customer_id": w.customer.pk, "address_id": w.address.pk})
        for name in ("api:address-detail", "api:address-update", "api:address-delete")
    },
    "privacy:erasure-create": lambda w: {"pk": w.customer.pk},
    "privacy:consent-create": lambda w: {"pk": w.customer.pk},
    "privacy:archive-create": lambda w: {"pk": w.customer.pk},
    "privacy:erasure-cancel": lambda w: {"pk": _erasure(w).pk},
    "privacy:archive-detail": lambda w: {"pk": _archive(w).pk},
    "privacy:archive-download": lambda w: {"pk": _archive(w).pk},
    **{
        f"imports:job-{action}": (lambda w: {"pk": import_job().pk})
        for action in ("detail", "mapping", "apply", "cancel", "resume", "refused-csv")
    },
    "notifications:click": lambda w: {
        "token": click_token(campaign_id=w.campaign.pk, subscription_id=w.subscription.pk)
    },
}


def _erasure(world: World) -> ErasureRequest:
    """The world customer's planned erasure (made on first use)."""
    return ErasureRequest.objects.filter(customer=world.customer, done_at=None).first() or (
        erasure_request(customer=world.customer, actor=world.users["Admin"], reason="Asked")
    )


def _archive(world: World) -> DataArchive:
    """A ready data archive of the world customer, requested by its Admin."""
    now = timezone.now()
    return DataArchive.objects.create(
        customer=world.customer,
        requested_by=world.users["Admin"],
        requested_at=now,
        expires_at=now + timedelta(hours=1),
        status=ArchiveStatus.READY,
        content=b"PK\x05\x06" + b"\x00" * 18,
    )


# Generic values for the Django admin's parameters.
ADMIN_KWARGS = {"object_id": "1", "content_type_id": "1", "id": "1", "url": "no-such-page/"}


def route_url(route: Route, world: World) -> str:
    """A URL of the route, its parameters filled with the world's objects."""
    if route.name in ROUTE_KWARGS:
        return reverse(route.name, kwargs=ROUTE_KWARGS[route.name](world))
    if route.parameters and route.namespace != ADMIN_NAMESPACE:
        raise AssertionError(f"{route.name} ({route.route}) has parameters: add it to ROUTE_KWARGS")
    regex = route.pattern.pattern.regex.pattern
    kwargs = {
        name: ADMIN_KWARGS.get(name) or _first_alternative(regex, name) for name in route.parameters
    }
    if route.pattern.name:
        return reverse(route.name, kwargs=kwargs)
    # An unnamed pattern (the admin has a few): fill its <converter:name> parts by hand.
    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(kwargs[m.group(1)]), route.route)


@functools.cache
def _vapid_pair() -> tuple[str, str]:
    vapid = Vapid()
    vapid.generate_keys()
    private = vapid.private_key.private_numbers().private_value.to_bytes(32, "big")
    public = vapid.public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return b64urlencode(private), b64urlencode(public)


def configure_push(settings) -> None:
    """A VAPID key pair, as a deployment with push configured has (pytest-django `settings`)."""
    settings.VAPID_PRIVATE_KEY, settings.VAPID_PUBLIC_KEY = _vapid_pair()
    settings.VAPID_SUBJECT = "mailto:shop@example.com"


def storefront_token(world: World) -> str:
    return storefront_token_issue(customer_id=world.customer.pk)


# The tables a request could change, fingerprinted to prove that one did not.
FINGERPRINTED = [
    "auth.User",
    "auth.Group",
    "clients.Customer",
    "clients.Address",
    "clients.Note",
    "clients.AuditEntry",
    "orders.Order",
    "orders.OrderLine",
    "notifications.Campaign",
    "notifications.PushSubscription",
    "notifications.Delivery",
    "storefront.ApiKey",
    "storefront.Launch",
    "exports.Export",
    "privacy.ConsentRecord",
    "privacy.ErasureRequest",
    "privacy.DataArchive",
]


def _as_text(field) -> str:
    """A column as SQL text: bytes (a data archive's file) in hexadecimal, since SQLite
    cannot read them as UTF-8 text."""
    column = connection.ops.quote_name(field.column)
    if field.get_internal_type() == "BinaryField":
        return f"encode({column}, 'hex')" if connection.vendor == "postgresql" else f"hex({column})"
    return f"CAST({column} AS TEXT)"


@functools.cache
def _fingerprint_sql() -> str:
    """One query for every fingerprinted table: (table's position, its row as text) in
    primary-key order. Each value is written with its length first (NULL as "-"), so no two
    different rows read the same. One query instead of one per table: the hostile-input test
    takes a fingerprint before and after each request, and the 17 ORM queries were half of
    its time."""
    parts = []
    for position, label in enumerate(FINGERPRINTED):
        model = apps.get_model(label)
        quote = connection.ops.quote_name
        values = " || '|' || ".join(
            f"COALESCE(LENGTH({_as_text(f)}) || ':' || {_as_text(f)}, '-')"
            for f in model._meta.concrete_fields
            if not (model is User and f.name == "last_login")
        )
        parts.append(
            f"SELECT {position} AS t, {quote(model._meta.pk.column)} AS pk, {values} AS row "
            f"FROM {quote(model._meta.db_table)}"
        )
    return " UNION ALL ".join(parts) + " ORDER BY t, pk"


def fingerprint() -> dict[str, str]:
    """A hash of every row of the fingerprinted tables (last_login excluded: logging in is
    not a change of data)."""
    digests = [hashlib.sha256() for _ in FINGERPRINTED]
    with connection.cursor() as cursor:
        cursor.execute(_fingerprint_sql())
        for position, _, row in cursor.fetchall():
            digests[position].update(row.encode() + b"\n")
    return {label: digest.hexdigest() for label, digest in zip(FINGERPRINTED, digests, strict=True)}
