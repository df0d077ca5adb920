from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower, Now
from django.urls import reverse
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

import backoffice.lookups  # noqa: F401 (registers the inline lookups)

# The Clients tab lists customers with at least one finalized order, the Leads tab the others;
# written inline (backoffice.lookups): every plan of a page can use the per-tab indexes.
IS_CLIENT = Q(orders_count__inline_gt=0)
IS_LEAD = Q(orders_count__inline_exact=0)
# The stored dates of a customer's latest finalized orders, newest first: the N-th is the
# date of its N-th latest (None if it has fewer than N).
LATEST_ORDER_DATES = (
    "last_order_at",
    "second_last_order_at",
    "third_last_order_at",
    "fourth_last_order_at",
    "fifth_last_order_at",
    "sixth_last_order_at",
    "seventh_last_order_at",
    "eighth_last_order_at",
    "ninth_last_order_at",
    "tenth_last_order_at",
)


class Customer(models.Model):
    """A shop customer. The primary key is the client ID staff see and search for."""

    email = models.EmailField(max_length=254)
    first_name = models.CharField(max_length=150, blank=True)
    last_name = models.CharField(max_length=150, blank=True)
    phone = models.CharField(max_length=32, blank=True)
    # No index of its own: the lists sort and filter on it within a tab, which the per-tab
    # (created_at, id) indexes serve (migration 0004); one more index would be one more
    # entry to write on every change of the row's list columns (each paid order).
    created_at = models.DateTimeField(_("customer since"))
    # The shop's own id for the account (its platform's customer id), set through the API.
    external_id = models.CharField(max_length=100, blank=True)
    # The customer's language (a BCP 47 tag such as "fr" or "en-GB"), as the shop knows it.
    language = models.CharField(max_length=35, blank=True)
    # When the account's details (contact, email, language, addresses) last changed, for the
    # API's `updated_since`; the statistics do not touch it. Rows older than the column got
    # the time of the migration (a constant default: PostgreSQL adds it without a rewrite).
    updated_at = models.DateTimeField(db_default=Now())
    default_billing_address = models.ForeignKey(
        "clients.Address",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    default_shipping_address = models.ForeignKey(
        "clients.Address",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # Optimistic locking: a form carries the version it was read at; a save from an older
    # version is refused instead of overwriting what someone else saved meanwhile.
    version = models.PositiveIntegerField(default=1)

    # --- Denormalized fields -------------------------------------------------------------
    # The lists sort, filter and page on these at a million customers; aggregating orders
    # per request would take seconds. They are written only by the services in
    # clients/services.py and orders/services.py, inside the transaction that changes the
    # source rows, and `manage.py rebuild_customer_stats` recomputes them and reports drift.
    orders_count = models.PositiveIntegerField(_("orders"), default=0)
    total_spent = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    first_order_at = models.DateTimeField(null=True, blank=True)
    last_order_at = models.DateTimeField(null=True, blank=True)
    # No index: nothing looks customers up by their last order (orders are never deleted,
    # Order.customer is PROTECT), and every paid order writes this column.
    last_order = models.ForeignKey(
        "orders.Order",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    # The dates of the second to tenth latest finalized orders (None below two, three...),
    # so that "at least / at most N orders in the last D days" (segments/filters.py) compares
    # a stored date instead of counting each candidate's orders: a customer has N or more
    # orders since D iff its N-th latest order is since D. Kept in the order services'
    # statistics statement, like last_order_at (LATEST_ORDER_DATES lists them in order).
    # Ten, not five (clients migration 0026): past the stored dates the filter reads each
    # candidate's orders, 0.1-0.6 s at a million customers for "6 or more in 30 days".
    second_last_order_at = models.DateTimeField(null=True, blank=True, editable=False)
    third_last_order_at = models.DateTimeField(null=True, blank=True, editable=False)
    fourth_last_order_at = models.DateTimeField(null=True, blank=True, editable=False)
    fifth_last_order_at = models.DateTimeField(null=True, blank=True, editable=False)
    sixth_last_order_at = models.DateTimeField(null=True, blank=True, editable=False)
    seventh_last_order_at = models.DateTimeField(null=True, blank=True, editable=False)
    eighth_last_order_at = models.DateTimeField(null=True, blank=True, editable=False)
    ninth_last_order_at = models.DateTimeField(null=True, blank=True, editable=False)
    tenth_last_order_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_source = models.CharField(max_length=100, blank=True)
    last_medium = models.CharField(max_length=100, blank=True)
    # Country of the default billing address, so the country filter needs no join.
    country = models.CharField(max_length=2, blank=True)
    # True while at least one active push subscription exists.
    push_opt_in = models.BooleanField(_("push accepted"), default=False)
    # The lifecycle group (lifecycle.rules.Group: "champions", "at_risk"…), decided by the
    # statistics above and the shop's thresholds. Stored so that the lists filter and show
    # it; written in the statistics' own statement by the order services (no extra write of
    # the row) and by the daily recompute (lifecycle/services.py) as time passes.
    lifecycle_group = models.CharField(
        _("lifecycle group"), max_length=16, db_default="prospects", editable=False
    )
    # What the segment filters read (segments/filters.py), stored so that each is a column
    # of the row rather than a probe into another table per candidate customer: the source
    # of the latest launch that had one (written by storefront.services when a launch is
    # recorded or linked) and whether the customer ever clicked a push (written by
    # notifications.services.click_record). `rebuild_customer_activity --check` compares
    # them with the launches and deliveries.
    last_launch_source = models.CharField(
        _("Last launch source"), max_length=100, db_default="", editable=False
    )
    push_opened = models.BooleanField(_("Opened a push"), db_default=False, editable=False)
    # Lower-case, accent-free "id first last email phone-digits": one column the search box
    # can match with a substring (a trigram index serves it on PostgreSQL).
    search_text = models.TextField(blank=True, editable=False)

    # --- Privacy (privacy/) ------------------------------------------------------------------
    # Set when the customer's personal data was erased (privacy.services.customers_erase): the
    # row stays for the orders and statistics, shown as "Erased customer #id".
    erased_at = models.DateTimeField(null=True, blank=True)
    # The current state of the marketing consents recorded in the consent ledger
    # (privacy.ConsentRecord), denormalized so the lists can filter on them without a join;
    # written only by privacy/services.py, rebuilt and checked by `rebuild_consent_state`.
    email_consent = models.BooleanField(_("email consent"), default=False)
    sms_consent = models.BooleanField(_("SMS consent"), default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("email"), name="customer_email_unique_ci"),
            models.UniqueConstraint(
                fields=["external_id"],
                condition=~Q(external_id=""),
                name="customer_external_id_unique",
            ),
        ]
        # The API's customer list pages by (updated_at, id) from `updated_since`.
        indexes = [models.Index(fields=["updated_at", "id"], name="customer_updated_idx")]

    def __str__(self):
        return self.display_name

    def get_absolute_url(self):
        return reverse("clients:client-detail", args=[self.pk])

    @property
    def display_name(self) -> str:
        """The name the pages show: the full name, else the email; erased customers by id."""
        if self.erased_at is not None:
            return gettext("Erased customer #%(id)s") % {"id": self.pk}
        return self.full_name or self.email

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()

    @property
    def is_client(self) -> bool:
        return self.orders_count > 0


class Address(models.Model):
    """A postal address in a customer's address book."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="addresses")
    name = models.CharField(max_length=200)
    company = models.CharField(max_length=200, blank=True)
    line1 = models.CharField(_("address line 1"), max_length=200)
    line2 = models.CharField(_("address line 2"), max_length=200, blank=True)
    postal_code = models.CharField(max_length=20)
    city = models.CharField(max_length=100)
    region = models.CharField(max_length=100, blank=True)
    country = models.CharField(max_length=2, help_text=_("ISO 3166-1 alpha-2 code."))
    phone = models.CharField(max_length=32, blank=True)
    version = models.PositiveIntegerField(default=1)

    class Meta:
        verbose_name_plural = _("addresses")

    def __str__(self):
        return ", ".join(p for p in (self.name, self.line1, self.postal_code, self.city) if p)

    def as_snapshot(self) -> dict:
        """The address as an order keeps it, frozen at the time of the order."""
        return {field: getattr(self, field) for field in ADDRESS_FIELDS}


ADDRESS_FIELDS = (
    "name",
    "company",
    "line1",
    "line2",
    "postal_code",
    "city",
    "region",
    "country",
    "phone",
)


class Note(models.Model):
    """One version of the back-office note about a customer.

    Notes are append-only: saving the note adds a version, so nothing staff wrote is ever
    lost. The customer's current note is its newest version.
    """

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="notes")
    text = models.TextField(blank=True)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["customer", "-created_at", "-id"])]

    def __str__(self):
        return f"Note on {self.customer_id} at {self.created_at:%Y-%m-%d %H:%M}"


class TabCount(models.Model):
    """PostgreSQL only: how many customers each tab holds, in 16 slots kept exact by triggers
    on the customers table (the table, its functions and triggers are created by
    clients/migrations/0004_postgres_list_indexes.py; the model gives its name to the SQL
    that reads it)."""

    slot = models.SmallIntegerField(primary_key=True)
    clients = models.BigIntegerField(default=0)
    leads = models.BigIntegerField(default=0)

    class Meta:
        managed = False
        db_table = "clients_tab_count"

    def __str__(self):
        return f"slot {self.slot}: {self.clients} clients, {self.leads} leads"


class AuditAction(models.TextChoices):
    """What an audit entry records; the label is the change history's wording."""

    CONTACT_UPDATE = "contact_update", _("Contact changed")
    ADDRESS_CREATE = "address_create", _("Address added")
    ADDRESS_UPDATE = "address_update", _("Address corrected")
    DEFAULT_ADDRESSES = "default_addresses", _("Default addresses changed")
    NOTE_SAVE = "note_save", _("Note saved")
    # Written when the customer's browsers subscribe or unsubscribe (notifications/services.py).
    PUSH_OPT_IN = "push_opt_in", _("Push notifications consent changed")
    # A test notification an admin sent to the customer's devices (notifications/services.py).
    PUSH_TEST = "push_test", _("Test notification sent")
    # The oldest of a customer's browsers, unsubscribed when a new one passes
    # PUSH_MAX_SUBSCRIPTIONS_PER_CUSTOMER (notifications/services.py).
    PUSH_SUBSCRIPTION_REPLACED = (
        "push_subscription_replaced",
        _("Oldest push subscription replaced by a new one"),
    )
    # Made by the customer through the shop's API (storefront/).
    SIGN_UP = "sign_up", _("Account created")
    CUSTOMER_UPDATE = "customer_update", _("Details changed")
    ADDRESS_DELETE = "address_delete", _("Address deleted")
    # The privacy actions (privacy/services.py).
    ERASURE_REQUEST = "erasure_request", _("Erasure requested")
    ERASURE_CANCEL = "erasure_cancel", _("Erasure cancelled")
    ERASURE_DONE = "erasure_done", _("Personal data erased")
    CONSENT = "consent", _("Consent recorded")
    # The customer's orders, as the shop reports them through the API (orders/services.py).
    ORDER_PLACE = "order_place", _("Order placed")
    ORDER_PAY = "order_pay", _("Order paid")
    ORDER_FULFIL = "order_fulfil", _("Order fulfilled")
    ORDER_CANCEL = "order_cancel", _("Order cancelled")
    ORDER_REFUND = "order_refund", _("Order refunded")
    ORDER_IMPORT = "order_import", _("Order imported")
    # Tags added or removed by staff, one by one or in bulk (tags/services.py).
    TAGS_CHANGE = "tags_change", _("Tags changed")
    # Created or updated by an import of a spreadsheet file (imports/): the entry names the
    # file, and the actor is the admin who applied it.
    IMPORT = "import", _("Imported from a file")


class AuditOrigin(models.TextChoices):
    """Who made a change: staff in the back office, or the customer (through the shop's API)."""

    STAFF = "staff", _("staff")
    CUSTOMER = "customer", _("the customer")
    # The shop's platform, through the API, for what the shop does rather than the customer
    # (an order fulfilled, cancelled or refunded, a history imported).
    SHOP = "shop", _("the shop")


class AuditEntry(models.Model):
    """Who changed what on a customer, when, from what to what."""

    # No index of their own: the (customer, -at, -id) index below serves every lookup by
    # customer, and the actor's is partial (below). Every order event writes an entry, most
    # of them without an actor (the storefront, the import): two index inserts fewer each.
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="audit_entries", db_index=False
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    at = models.DateTimeField()
    action = models.CharField(max_length=50, choices=AuditAction.choices)
    origin = models.CharField(max_length=10, choices=AuditOrigin.choices, default="staff")
    # {"field": [before, after], ...}
    changes = models.JSONField(default=dict)

    class Meta:
        indexes = [
            models.Index(fields=["customer", "-at", "-id"]),
            # For a user's deletion (SET_NULL finds their entries).
            models.Index(
                fields=["actor"], condition=models.Q(actor__isnull=False), name="audit_actor_idx"
            ),
        ]
        verbose_name_plural = _("audit entries")

    def __str__(self):
        return f"{self.action} on {self.customer_id} at {self.at:%Y-%m-%d %H:%M}"
