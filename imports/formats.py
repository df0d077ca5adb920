"""What each column of an imported file holds: the fields an import fills, the header sets of
the formats recognized (this back office's export, the customer exports of Shopify,
WooCommerce, PrestaShop, Magento and Squarespace, Mailchimp's audience export, an order
history file), and the recognition itself.

Headers are compared case-folded, with accents, spacing and punctuation around them ignored,
so "E-mail", "e-mail " and "EMAIL" are alike.
"""

import re
import unicodedata

from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from exports.columns import header_keys
from imports.models import ImportFormat, ImportKind
from imports.reading import UnreadableFile

IGNORE = ""

# The fields a customer import fills, in the order the mapping form offers them.
CUSTOMER_FIELDS = {
    "email": _("Email"),
    "external_id": _("Shop's customer ID"),
    "first_name": _("First name"),
    "last_name": _("Last name"),
    "full_name": _("Full name (split into first and last name)"),
    "phone": _("Phone"),
    "address_phone": _("Address phone (used when there is no phone)"),
    "language": _("Language"),
    "created_at": _("Customer since"),
    # Stripe's "Created (UTC)", Wix's "Created At (UTC+0)": times in UTC, not the shop's.
    "created_at_utc": _("Customer since (a UTC time)"),
    "company": _("Company"),
    "line1": _("Billing address line 1"),
    "line2": _("Billing address line 2"),
    "postal_code": _("Billing postal code"),
    "city": _("Billing city"),
    "region": _("Billing region or state"),
    "country": _("Billing country"),
    "shipping_line1": _("Shipping address line 1"),
    "shipping_line2": _("Shipping address line 2"),
    "shipping_postal_code": _("Shipping postal code"),
    "shipping_city": _("Shipping city"),
    "shipping_region": _("Shipping region or state"),
    "shipping_country": _("Shipping country"),
    "email_consent": _("Accepts email marketing"),
    "email_consent_at": _("Email marketing consent date"),
    "sms_consent": _("Accepts SMS marketing"),
    "sms_consent_at": _("SMS marketing consent date"),
    # A file that lists only subscribers (or only people who unsubscribed) says so by a date.
    "email_subscribed_at": _("Subscribed to email marketing on (a date: accepts)"),
    "email_unsubscribed_at": _("Unsubscribed from email marketing on (a date: refuses)"),
}
ORDER_FIELDS = {
    "email": _("Customer's email"),
    "customer_external_id": _("Shop's customer ID"),
    "number": _("Order number"),
    "placed_at": _("Order date"),
    "total": _("Total"),
    "status": _("Status"),
    "refunded_amount": _("Refunded amount"),
    "currency": _("Currency"),
    "source": _("Source"),
    "medium": _("Medium"),
    "campaign": _("Campaign"),
}
# Customer fields that must be mapped for an import to start.
REQUIRED = {ImportKind.CUSTOMERS: ("email",), ImportKind.ORDERS: ("number", "placed_at", "total")}


def fields_of(kind: str) -> dict:
    return ORDER_FIELDS if kind == ImportKind.ORDERS else CUSTOMER_FIELDS


def normalize_header(header) -> str:
    text = unicodedata.normalize("NFKD", str(header))
    text = "".join(c for c in text if not unicodedata.combining(c)).casefold()
    text = re.sub(r"[\s_]+", " ", text.replace("\ufeff", ""))
    return text.strip(" \"'.:*")


def _aliases(mapping: dict[str, str]) -> dict[str, str]:
    return {normalize_header(header): field for header, field in mapping.items()}


# Shopify's customer export (Customers > Export). The current file ("Customer ID", "Default
# Address ..." columns, email and SMS consent apart) and the older one (address columns without
# the prefix, one "Accepts Marketing"); both write ids, phones and zips after a quote.
SHOPIFY = _aliases(
    {
        "Customer ID": "external_id",
        "First Name": "first_name",
        "Last Name": "last_name",
        "Email": "email",
        "Accepts Email Marketing": "email_consent",
        "Accepts Marketing": "email_consent",
        "Default Address Company": "company",
        "Default Address Address1": "line1",
        "Default Address Address2": "line2",
        "Default Address City": "city",
        "Default Address Province Code": "region",
        "Default Address Country Code": "country",
        "Default Address Zip": "postal_code",
        "Default Address Phone": "address_phone",
        "Company": "company",
        "Address1": "line1",
        "Address2": "line2",
        "City": "city",
        "Province": "region",
        "Province Code": IGNORE,
        "Country": IGNORE,  # the name; "Country Code" is read instead
        "Country Code": "country",
        "Zip": "postal_code",
        "Phone": "phone",
        "Accepts SMS Marketing": "sms_consent",
        "Total Spent": IGNORE,
        "Total Orders": IGNORE,
        "Note": IGNORE,
        "Tax Exempt": IGNORE,
        "Tags": IGNORE,
    }
)
SHOPIFY_SIGNATURE = (
    {"first name", "last name", "email", "total spent", "total orders"},
    {"first name", "last name", "email", "accepts email marketing"},
    {"first name", "last name", "email", "accepts marketing", "address1"},
)

# WooCommerce: the Customer / Order / Coupon Export extension's customer file (its column keys
# as headers, its default), WooCommerce Analytics > Customers > Download, and the files of
# WordPress users export plugins (WordPress's user fields, user_email..., with WooCommerce's
# billing_* and shipping_* user meta).
WOOCOMMERCE = _aliases(
    {
        "customer_id": "external_id",
        "first_name": "first_name",
        "last_name": "last_name",
        "user_login": IGNORE,
        "email": "email",
        "user_pass": IGNORE,
        "date_registered": "created_at",
        "billing_first_name": IGNORE,
        "billing_last_name": IGNORE,
        "billing_company": "company",
        "billing_email": IGNORE,
        "billing_phone": "phone",
        "billing_address_1": "line1",
        "billing_address_2": "line2",
        "billing_postcode": "postal_code",
        "billing_city": "city",
        "billing_state": "region",
        "billing_country": "country",
        "shipping_first_name": IGNORE,
        "shipping_last_name": IGNORE,
        "shipping_company": IGNORE,
        "shipping_phone": IGNORE,
        "shipping_address_1": "shipping_line1",
        "shipping_address_2": "shipping_line2",
        "shipping_postcode": "shipping_postal_code",
        "shipping_city": "shipping_city",
        "shipping_state": "shipping_region",
        "shipping_country": "shipping_country",
        "total_spent": IGNORE,
        "order_count": IGNORE,
        # WordPress users
        "user_email": "email",
        "user_registered": "created_at",
        "display_name": IGNORE,
        # Analytics > Customers (downloaded, or sent by email: "Sign Up" for "Date Registered")
        "Name": "full_name",
        "Username": IGNORE,
        "Last Active": IGNORE,
        "Date Registered": "created_at",
        "Sign Up": "created_at",
        "Email": "email",
        "Orders": IGNORE,
        "Total Spend": IGNORE,
        "AOV": IGNORE,
        "Country / Region": "country",
        "Country": "country",
        "City": "city",
        "Region": "region",
        "Postal Code": "postal_code",
    }
)
WOOCOMMERCE_SIGNATURE = (
    {"email", "billing address 1", "billing country"},
    {"user email", "user login", "billing address 1", "billing country"},
    {"email", "user login", "date registered"},
    {"name", "username", "email", "total spend", "aov"},
)

# PrestaShop 1.7-9: Customers > Customers > Export (semicolons; headers in the back office's
# language, English here; "Group" only in 8 and later). "Newsletter" is the shop's own email
# marketing, "Partner offers" third parties' (not imported); "Sales" is written by the locale.
PRESTASHOP = _aliases(
    {
        "ID": "external_id",
        "Social title": IGNORE,
        "First name": "first_name",
        "Last name": "last_name",
        "Email address": "email",
        "Group": IGNORE,
        "Company": IGNORE,  # no address in this file to hold it
        "Sales": IGNORE,
        "Enabled": IGNORE,
        "Newsletter": "email_consent",
        "Partner offers": IGNORE,
        "Registration": "created_at",
        "Last visit": IGNORE,
    }
)
PRESTASHOP_SIGNATURE = (
    {"social title", "first name", "last name", "email address", "partner offers", "last visit"},
)

# Magento 2: System > Data Transfer > Export, "Customers Main File" (one row per customer and
# website; no customer id, no address: the addresses are a file of their own).
MAGENTO = _aliases(
    {
        "email": "email",
        "firstname": "first_name",
        "lastname": "last_name",
        "created_at": "created_at",
    }
)
MAGENTO_SIGNATURE = ({"email", "website", "created in", "firstname", "lastname", "group id"},)
# Its "Customer Addresses" file: any number of addresses a customer, the default ones flagged.
MAGENTO_ADDRESSES_SIGNATURE = {"website", "email", "entity id", "street", "country id"}

# Mailchimp: Audience > Export audience, a zip of three files (subscribed, unsubscribed,
# cleaned members). The audience's merge fields ("First Name"... the defaults) then
# Mailchimp's own columns. Which file it is says the consent: subscribed since CONFIRM_TIME,
# unsubscribed at UNSUB_TIME; the cleaned members' (bounced addresses) is left as it is. Its
# "Address" is one cell of parts two spaces apart: not imported.
MAILCHIMP = _aliases(
    {
        "Email Address": "email",
        "First Name": "first_name",
        "Last Name": "last_name",
        "Phone Number": "phone",
        "Address": IGNORE,
        "CC": IGNORE,  # the country of the subscriber's IP address, not of an address
        "REGION": IGNORE,
    }
)
MAILCHIMP_SIGNATURE = ({"email address", "member rating", "optin time", "confirm time", "leid"},)


def mailchimp(present: set[str]) -> dict[str, str]:
    """Mailchimp's aliases for one of its three files (see MAILCHIMP)."""
    if "unsub time" in present:
        return {**MAILCHIMP, "unsub time": "email_unsubscribed_at"}
    if "clean time" in present:
        return MAILCHIMP
    return {**MAILCHIMP, "confirm time": "email_subscribed_at"}


# Squarespace: Contacts > Export all contacts ("profiles.csv"): the profile's names, email and
# "Accepts Marketing" (true/false), then its shipping and billing details. Its "Created On" is
# when the profile was made; "Customer Since" (the first order) comes with the order history.
SQUARESPACE = _aliases(
    {
        "Email": "email",
        "First Name": "first_name",
        "Last Name": "last_name",
        "Accepts Marketing": "email_consent",
        "Created On": "created_at",
        "Billing Address 1": "line1",
        "Billing Address 2": "line2",
        "Billing City": "city",
        "Billing Province/State": "region",
        "Billing Zip": "postal_code",
        "Billing Country": "country",
        "Billing Phone Number": "address_phone",
        "Shipping Address 1": "shipping_line1",
        "Shipping Address 2": "shipping_line2",
        "Shipping City": "shipping_city",
        "Shipping Province/State": "shipping_region",
        "Shipping Zip": "shipping_postal_code",
        "Shipping Country": "shipping_country",
    }
)
# Before WooCommerce's: this file has WooCommerce's "Email", "Billing Address 1" and "Billing
# Country" too, and was taken for one (its consent and dates not imported).
SQUARESPACE_SIGNATURE = ({"email", "accepts marketing", "customer since", "subscriber since"},)


# Our own export: its columns' keys (exports/columns.py) to the fields they fill; the
# statistics, push consent and client ID are the back office's own and are not imported
# (statistics come from orders: import the order history).
OURS_KEYS = {
    "first_name": "first_name",
    "last_name": "last_name",
    "email": "email",
    "phone": "phone",
    "created_at": "created_at",
    "billing_line1": "line1",
    "billing_line2": "line2",
    "billing_postal_code": "postal_code",
    "billing_city": "city",
    "billing_country": "country",
    "shipping_line1": "shipping_line1",
    "shipping_line2": "shipping_line2",
    "shipping_postal_code": "shipping_postal_code",
    "shipping_city": "shipping_city",
    "shipping_country": "shipping_country",
    "external_id": "external_id",
}


def ours() -> dict[str, str]:
    """Our export's headers, in English and French, to the fields they fill."""
    return {
        normalize_header(header): OURS_KEYS.get(key, IGNORE)
        for header, key in header_keys(("en", "fr")).items()
    }


# Shopify's orders export (Orders > Export): a row per item, the order on its first one.
SHOPIFY_ORDERS_SIGNATURE = frozenset({"name", "financial status", "lineitem name", "source"})

ORDERS = _aliases(
    {
        "email": "email",
        "e-mail": "email",
        "customer email": "email",
        "billing_email": "email",
        "customer_email": "email",
        "courriel": "email",
        "customer id": "customer_external_id",
        "customer_id": "customer_external_id",
        "number": "number",
        "order": "number",
        "order number": "number",
        "order_number": "number",
        "order id": "number",
        "name": "number",  # Shopify's orders export: "#1001"
        "numero de commande": "number",
        "n° de commande": "number",
        "commande": "number",
        "date": "placed_at",
        "order date": "placed_at",
        "order_date": "placed_at",
        "created at": "placed_at",
        "placed at": "placed_at",
        "date de commande": "placed_at",
        "total": "total",
        "order total": "total",
        "order_total": "total",
        "montant": "total",
        "status": "status",
        "financial status": "status",
        "statut": "status",
        "etat": "status",
        "refunded amount": "refunded_amount",
        "refunded_amount": "refunded_amount",
        "refunded_total": "refunded_amount",  # WooCommerce's Customer / Order / Coupon Export
        "montant rembourse": "refunded_amount",
        "currency": "currency",
        "order_currency": "currency",
        "devise": "currency",
        "source": "source",
        "medium": "medium",
        "campaign": "campaign",
        "campagne": "campaign",
    }
)


# Headers a hand-made spreadsheet often has, in English and French: the first guess of a
# file of no known format (the user checks it and chooses the rest).
GENERIC = _aliases(
    {
        "e-mail": "email",
        "mail": "email",
        "courriel": "email",
        "adresse e-mail": "email",
        "email address": "email",
        # Wix's contacts export
        "email 1": "email",
        "phone 1": "phone",
        "address 1 - street": "line1",
        "address 1 - street line 2": "line2",
        "address 1 - city": "city",
        "address 1 - state/region": "region",
        "address 1 - zip": "postal_code",
        "address 1 - country": "country",
        "created at (utc+0)": "created_at_utc",
        "email subscriber status": "email_consent",
        "sms subscriber status": "sms_consent",
        "customer email": "email",  # Ecwid's customer_email
        # HubSpot's contacts export (its "Marketing contact status" is HubSpot's billing
        # status, not a consent, and its Record ID HubSpot's own: not imported)
        "street address": "line1",
        "state/region": "region",
        "country/region": "country",
        "create date": "created_at",
        # Stripe's customers export (its id is Stripe's, not the shop's: not imported)
        "created (utc)": "created_at_utc",
        # Klaviyo's profiles
        "address 2": "line2",
        "state / region": "region",
        "email marketing consent": "email_consent",
        "sms consent": "sms_consent",
        "sms marketing consent": "sms_consent",
        # BigCommerce's customers export (its "Receive Review/Abandoned Cart Emails?" is no
        # marketing consent; its "Addresses" all of them in one cell: not imported)
        "date joined": "created_at",
        "prenom": "first_name",
        "nom": "last_name",
        "nom de famille": "last_name",
        "name": "full_name",
        "full name": "full_name",
        "nom complet": "full_name",
        "telephone": "phone",
        "phone number": "phone",
        "tel": "phone",
        "mobile": "phone",
        "portable": "phone",
        "societe": "company",
        "entreprise": "company",
        "adresse": "line1",
        "address": "line1",
        "adresse 1": "line1",
        "adresse 2": "line2",
        "complement d'adresse": "line2",
        "code postal": "postal_code",
        "cp": "postal_code",
        "postcode": "postal_code",
        "postal code": "postal_code",
        "zip code": "postal_code",
        "ville": "city",
        "pays": "country",
        "region": "region",
        "langue": "language",
        "client depuis": "created_at",
        "inscrit le": "created_at",
        "date d'inscription": "created_at",
        "newsletter": "email_consent",
        "optin email": "email_consent",
        "optin sms": "sms_consent",
    }
)


def recognize(kind: str, headers: list[str]) -> tuple[str, list[str]]:
    """The format of a file from its header row, and the field each column fills.

    Customers: the format whose signature the headers hold; a file of none of them is
    MANUAL with the columns we could still place (its mapping is for the user to finish).
    Columns no format knows are ignored (shown, and the user may map them).
    """
    names = [normalize_header(h) for h in headers]
    present = set(names)
    if kind == ImportKind.ORDERS:
        mapping = _map(names, ORDERS)
        if present >= SHOPIFY_ORDERS_SIGNATURE:
            # Shopify's "Source" is the sales channel (web, pos, an app's id), not where the
            # customer came from: as the order's source it became the client's "Last source".
            mapping = [
                IGNORE if name == "source" else field
                for name, field in zip(names, mapping, strict=True)
            ]
        return ImportFormat.ORDERS, mapping
    if present >= MAGENTO_ADDRESSES_SIGNATURE:
        raise UnreadableFile(
            gettext(
                "This is Magento's Customer Addresses file, which the import does not read (a "
                "customer may have several addresses in it). Import Magento's Customers Main "
                "File; for the addresses, make a file with one row per customer (email, "
                "street, postal code, city, country) and choose its columns."
            )
        )
    candidates = (
        (ImportFormat.SHOPIFY, SHOPIFY, SHOPIFY_SIGNATURE),
        (ImportFormat.SQUARESPACE, SQUARESPACE, SQUARESPACE_SIGNATURE),
        (ImportFormat.WOOCOMMERCE, WOOCOMMERCE, WOOCOMMERCE_SIGNATURE),
        (ImportFormat.PRESTASHOP, PRESTASHOP, PRESTASHOP_SIGNATURE),
        (ImportFormat.MAGENTO, MAGENTO, MAGENTO_SIGNATURE),
        (ImportFormat.MAILCHIMP, mailchimp(present), MAILCHIMP_SIGNATURE),
        (ImportFormat.OURS, ours(), None),
    )
    for name, aliases, signatures in candidates:
        if signatures is None:
            known = sum(1 for n in names if n in aliases)
            if known >= max(4, len(names) * 3 // 4) and {"email", "e-mail"} & present:
                return name, _map(names, aliases)
        elif any(signature <= present for signature in signatures):
            return name, _map(names, aliases)
    every = {}
    for aliases in (SHOPIFY, WOOCOMMERCE, MAGENTO, ours(), GENERIC):
        every.update((name, field) for name, field in aliases.items() if field)
    return ImportFormat.MANUAL, _map(names, every)


def _map(names: list[str], aliases: dict[str, str]) -> list[str]:
    mapping, used = [], set()
    for name in names:
        field = aliases.get(name, IGNORE)
        if field in used:
            field = IGNORE  # two columns for one field: the first one wins
        used.add(field)
        mapping.append(field)
    return mapping
