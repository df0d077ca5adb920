"""The back office in English and in French.

The central test renders every main page in both languages and fails on any visible text
that comes out the same in French as in English, unless it is data (names, emails, order
numbers…) or a word French and English share (listed in the catalog with an identical
translation). A string a template or a view forgets to mark for translation is caught even
when it never made it into the catalog.
"""

import gettext
import re
from datetime import timedelta
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

import polib
import pytest
from django.conf import settings
from django.db import models
from django.test import Client
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.formats import date_format, number_format
from django.utils.timezone import localtime
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from backoffice.countries import country_name
from backoffice.templatetags.formatting import money
from clients.forms import ContactForm
from clients.models import Address, Customer, Note
from clients.services import address_create, customer_contact_values, note_save
from imports.models import ImportJob
from lifecycle.services import lifecycle_recompute
from notifications.models import Campaign
from notifications.services import Audience, Message, campaign_create
from orders.models import Order, OrderLine
from privacy.models import AccessLogEntry, ConsentRecord, ErasureRequest
from privacy.services import consent_record, customers_erase, erasure_request
from segments.models import Segment
from segments.services import segment_create
from tags.models import Tag, TagJob
from tags.services import customer_set_tags, tag_job_create, tag_job_run
from tests.factories import CustomerFactory, UserFactory, make_click, make_order
from tests.imports.pages import checked_job, import_pages

LOCALE = Path(settings.BASE_DIR) / "locale" / "fr" / "LC_MESSAGES"
PO = LOCALE / "django.po"
MO = LOCALE / "django.mo"


def catalog() -> polib.POFile:
    return polib.pofile(str(PO))


# --- The catalog ------------------------------------------------------------------------


def test_every_catalog_entry_is_translated_and_none_is_fuzzy():
    po = catalog()
    assert po.untranslated_entries() == []
    assert [entry.msgid for entry in po.fuzzy_entries()] == []
    assert len(po) > 200


def test_the_compiled_catalog_matches_the_po_file():
    """django.mo is committed (CI has no gettext tools): it must say what django.po says."""
    with MO.open("rb") as file:
        compiled = gettext.GNUTranslations(file)
    stale = []
    for entry in catalog().translated_entries():
        if entry.msgid_plural:
            for n, index in ((1, 0), (2, 1)):
                got = compiled.ngettext(entry.msgid, entry.msgid_plural, n)
                if got != entry.msgstr_plural[index]:
                    stale.append(entry.msgid)
        elif entry.msgctxt is not None:
            if compiled.pgettext(entry.msgctxt, entry.msgid) != entry.msgstr:
                stale.append(entry.msgid)
        elif compiled.gettext(entry.msgid) != entry.msgstr:
            stale.append(entry.msgid)
    assert stale == [], "Run `manage.py compilemessages` (apt-get install gettext)."
    # No entry of the compiled catalog is missing from the .po file either.
    msgids = {
        entry.msgid if entry.msgctxt is None else f"{entry.msgctxt}\x04{entry.msgid}"
        for entry in catalog()
    }
    assert set(compiled._catalog) - {""} <= msgids | {
        (entry.msgid, 0) for entry in catalog() if entry.msgid_plural
    } | {(entry.msgid, 1) for entry in catalog() if entry.msgid_plural}


def test_placeholders_are_kept_in_the_translations():
    placeholder = re.compile(r"%\(\w+\)[sd]")
    for entry in catalog().translated_entries():
        expected = sorted(placeholder.findall(entry.msgid))
        translations = entry.msgstr_plural.values() if entry.msgid_plural else [entry.msgstr]
        for text in translations:
            found = sorted(placeholder.findall(text))
            # A singular may spell out its count ("tous les jours" for "every day").
            assert set(found) <= set(expected) | set(
                placeholder.findall(entry.msgid_plural or "")
            ), entry.msgid
            if not entry.msgid_plural:
                assert found == expected, entry.msgid


# --- Formats ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "expected", "negative"),
    [("fr", "1\u00a0234,56\u00a0€", "-5,00\u00a0€"), ("en", "€1,234.56", "-€5.00")],
)
def test_money_is_written_as_each_language_writes_it(language, expected, negative):
    with translation.override(language):
        assert money(Decimal("1234.56")) == expected
        assert money(Decimal("-5")) == negative


@hypothesis_settings(max_examples=300, deadline=None)
@given(
    amount=st.decimals(min_value=-(10**14), max_value=10**14, allow_nan=False, places=4)
    | st.decimals(allow_nan=False, allow_infinity=False),
    language=st.sampled_from(["en", "fr", "de", None]),
)
def test_money_writes_amounts_as_number_format_does(amount, language):
    """money()'s fast path (groups of three) against Django's number_format."""
    with translation.override(language):
        sign = "-" if amount < 0 else ""
        expected = number_format(abs(amount), decimal_pos=2, use_l10n=True, force_grouping=True)
        symbol = {"EUR": "€", "USD": "$", "GBP": "£"}.get(settings.SHOP_CURRENCY)
        if language == "fr":
            assert money(amount) == f"{sign}{expected}\u00a0{symbol}"
        else:
            assert money(amount) == f"{sign}{symbol}{expected}"


@pytest.mark.django_db
def test_pages_show_money_and_dates_as_the_language_writes_them(viewer_client):
    customer = CustomerFactory()
    make_order(customer, total="1234.56", number="M1")
    url = reverse("orders:order-detail", args=["M1"])
    french = viewer_client.get(url, headers={"accept-language": "fr"}).text
    english = viewer_client.get(url, headers={"accept-language": "en"}).text
    assert "1\u00a0234,56\u00a0€" in french
    assert "€1,234.56" in english
    with translation.override("fr"):
        short = date_format(localtime(Order.objects.get(number="M1").placed_at), "N")
    assert short in french


# --- Choosing the language --------------------------------------------------------------


@pytest.mark.django_db
def test_the_language_comes_from_the_browser(viewer_client):
    french = viewer_client.get("/clients/", headers={"accept-language": "fr-FR,fr;q=0.9"})
    assert '<html lang="fr">' in french.text
    assert "Prospects" in french.text
    english = viewer_client.get("/clients/", headers={"accept-language": "en-US,en;q=0.9"})
    assert '<html lang="en">' in english.text
    assert "Leads" in english.text


@pytest.mark.django_db
def test_the_menu_switches_the_language_for_a_logged_in_user(viewer_client):
    page = viewer_client.get("/clients/leads/", headers={"accept-language": "en"})
    assert 'name="language" value="fr"' in page.text
    response = viewer_client.post(
        reverse("set_language"), {"language": "fr", "next": "/clients/leads/"}
    )
    assert response.status_code == 302
    assert response["Location"] == "/clients/leads/"
    # The choice wins over the browser's language from now on.
    page = viewer_client.get("/clients/leads/", headers={"accept-language": "en"})
    assert '<html lang="fr">' in page.text


@pytest.mark.django_db
def test_the_login_page_offers_the_switch_and_it_needs_the_csrf_token():
    client = Client(enforce_csrf_checks=True)
    login = client.get("/login/")
    assert 'name="language" value="fr"' in login.text
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text).group(1)
    forged = client.post(reverse("set_language"), {"language": "fr", "next": "/login/"})
    assert forged.status_code == 403
    response = client.post(
        reverse("set_language"),
        {"language": "fr", "next": "/login/", "csrfmiddlewaretoken": token},
    )
    assert response.status_code == 302
    assert "Se connecter" in client.get("/login/").text


@pytest.mark.django_db
def test_an_unknown_language_or_an_outside_next_changes_nothing_harmful(viewer_client):
    response = viewer_client.post(
        reverse("set_language"), {"language": "xx", "next": "https://evil.example/"}
    )
    assert response.status_code == 302
    assert "evil.example" not in response["Location"]
    page = viewer_client.get("/clients/", headers={"accept-language": "en"})
    assert '<html lang="en">' in page.text


# --- No untranslated text ---------------------------------------------------------------


class VisibleText(HTMLParser):
    """Text a person sees or hears: text nodes and the labelling attributes."""

    ATTRIBUTES = ("aria-label", "title", "placeholder", "alt")
    HIDDEN = {"script", "style", "template"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.texts: list[str] = []
        self._hidden = 0
        self._joined = False

    def handle_starttag(self, tag, attrs):
        # A line-break opportunity inside a word (long emails): the text goes on.
        self._joined = tag == "wbr"
        if tag in self.HIDDEN:
            self._hidden += 1
        attrs = dict(attrs)
        self.texts.extend(attrs[name] for name in self.ATTRIBUTES if attrs.get(name))
        if tag == "input" and attrs.get("type") in ("submit", "button") and attrs.get("value"):
            self.texts.append(attrs["value"])

    def handle_endtag(self, tag):
        if tag in self.HIDDEN:
            self._hidden -= 1

    def handle_data(self, data):
        if not self._hidden and data.strip():
            if self._joined and self.texts:
                self.texts[-1] += data
            else:
                self.texts.append(data)
        self._joined = False


def visible_texts(html: str) -> set[str]:
    parser = VisibleText()
    parser.feed(html)
    return {" ".join(text.split()) for text in parser.texts}


def shared_words() -> set[str]:
    """Words French writes as English does: those of entries translated identically."""
    # Each language is named in itself in the language switch.
    words = {"English", "Français"}
    for entry in catalog().translated_entries():
        if entry.msgid == entry.msgstr:
            words.update(re.findall(r"[^\W\d_]+", entry.msgid))
    return words


def data_values() -> set[str]:
    """Every text the database holds for the pages: names, emails, numbers, addresses…"""
    values = {settings.SHOP_NAME, settings.SHOP_CURRENCY}
    for model in (
        Customer,
        Address,
        Order,
        OrderLine,
        Note,
        Campaign,
        UserFactory._meta.model,
        ConsentRecord,
        ErasureRequest,
        AccessLogEntry,
        Tag,
        Segment,
        UserFactory._meta.model,
    ):
        text_fields = [
            f.name
            for f in model._meta.concrete_fields
            if isinstance(f, models.CharField | models.TextField | models.EmailField)
        ]
        for row in model.objects.values_list(*text_fields):
            values.update(str(value) for value in row if value)
    values.update(str(address) for address in Address.objects.all())
    # An imported file's name and column headers are the file's own text.
    for name, headers in ImportJob.objects.values_list("file_name", "headers"):
        values.update([name, *headers])
    values.update(customer.full_name for customer in Customer.objects.all())
    # Countries are named by CLDR in each language ("France" is French for France too).
    for code in Address.objects.values_list("country", flat=True):
        values.update(country_name(code, language) for language in ("en", "fr"))
    return {value for value in values if value}


def untranslated(french_html: str, english_html: str, data: set[str], shared: set[str]):
    leftovers = []
    for text in visible_texts(french_html) & visible_texts(english_html):
        rest = text
        for value in sorted(data, key=len, reverse=True):
            rest = rest.replace(value, " ")
        words = [w for w in re.findall(r"[^\W\d_]{2,}", rest) if w not in shared]
        if words:
            leftovers.append(text)
    return sorted(leftovers)


@pytest.fixture
def shop(db):
    star = CustomerFactory(first_name="Zéphyrine", last_name="Lefèvre")
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
        name="Atelier",
        line1="3 quai Saint-Vincent",
        postal_code="69001",
        city="Lyon",
        country="FR",
    )
    make_order(star, total="1234.56", number="Z0")
    make_order(star, total="20.00", number="Z1", status="refunded")
    lina = CustomerFactory(first_name="Lina", last_name="Prospect")
    staff = UserFactory(role="Staff")
    # Privacy: a consent, a planned erasure, an erased customer (privacy/).
    consent_record(
        customer=star, channel="email", granted=True, source="phone", actor=staff, note="Oui"
    )
    erasure_request(customer=lina, actor=staff, reason="Demande par e-mail")
    gone = CustomerFactory(first_name="Gone", last_name="Erased")
    customers_erase(customers=type(gone).objects.filter(pk=gone.pk))
    # An overdue client (the Overdue list), and a snapshot 31 days old (the dashboard's change).
    late = CustomerFactory(first_name="Olivier", last_name="Retard")
    make_order(late, total="80.00", number="Z2", placed_at=timezone.now() - timedelta(days=100))
    make_order(late, total="80.00", number="Z3", placed_at=timezone.now() - timedelta(days=60))
    lifecycle_recompute(now=timezone.now() - timedelta(days=31))
    lifecycle_recompute()
    note_save(customer=star, actor=staff, text="Call before delivering", based_on=None)
    note_save(
        customer=star,
        actor=staff,
        text="Call after noon",
        based_on=Note.objects.get(customer=star).pk,
    )
    # A campaign (it stays scheduled: the test transaction never commits).
    campaign_create(
        actor=UserFactory(role="Admin"),
        audience=Audience(tab="clients", kind="selected", ids=(star.pk,)),
        message=Message(title="Soldes", body="-20 %", link="https://shop.example/"),
        send_at=None,
        public_base_url="https://backoffice.example",
    )
    # What the campaign earned: the star clicked it, then ordered (the campaign and client
    # pages show the credited order, the order page its campaign).
    make_click(star, Campaign.objects.get(), at=timezone.now() - timedelta(hours=1))
    make_order(star, total="45.00", number="Z4")
    # Issue 14: a tag, a saved segment and a finished bulk tag job.
    tag = customer_set_tags(customer=star, actor=staff, names=["Fidèle"])[0]
    segment_create(actor=staff, name="Fidèles", tab="clients", query=f"tags_any={tag.pk}")
    tag_job_run(
        job_id=tag_job_create(
            actor=staff, action="add", names=["Fidèle"], tab="clients", ids=[], query=""
        ).pk
    )
    checked_job()  # an import with refused rows and updates (imports pages)
    return star


def _pages(star):
    address = star.addresses.first()
    return [
        "/clients/",
        "/clients/?q=zz&sort=bogus&per_page=7&page=abc&country=123&spent_min=x",
        "/clients/leads/",
        "/clients/leads/?q=lefevre+zephyrine",  # "1 match in Clients"
        "/clients/?q=prospect",  # "1 match in Leads"
        "/clients/?page=99",
        star.get_absolute_url(),
        star.get_absolute_url() + "?notes=1",
        reverse("clients:contact-update", args=[star.pk]),
        reverse("clients:note-update", args=[star.pk]),
        reverse("clients:default-addresses-update", args=[star.pk]),
        reverse("clients:address-update", args=[star.pk, address.pk]),
        reverse("orders:order-detail", args=["Z0"]),
        reverse("orders:order-detail", args=["Z4"]),
        "/clients/999999/",
        reverse("notifications:campaign-list"),
        reverse("notifications:campaign-create") + f"?tab=clients&audience=selected&ids={star.pk}",
        reverse("notifications:campaign-create") + "?tab=leads&audience=all",
        reverse("notifications:campaign-create") + "?tab=nowhere&audience=all",
        Campaign.objects.get().get_absolute_url(),
        reverse("privacy:overview"),
        reverse("privacy:audit"),
        reverse("privacy:audit") + "?customer=abc",
        reverse("privacy:erasure-create", args=[star.pk]),
        reverse("privacy:consent-create", args=[star.pk]),
        reverse("clients:client-detail", args=[Customer.objects.get(first_name="Lina").pk]),
        reverse("clients:client-detail", args=[Customer.objects.exclude(erased_at=None).get().pk]),
        reverse("lifecycle:dashboard"),
        reverse("lifecycle:overdue"),
        reverse("lifecycle:overdue") + "?page=abc",
        "/clients/?group=at_risk",
        "/clients/?group=bogus",
        reverse("tags:tag-list"),
        TagJob.objects.get().get_absolute_url(),
        "/clients/?tags_any=1&product=x&recent_orders_min=3&recent_orders_days=1"
        "&opened_push=never&launch_source=google",
        "/clients/?recent_orders_min=3&tags_all=abc",
        *import_pages(),
    ]


def _get(client, url, language, **kwargs):
    return client.get(url, headers={"accept-language": language}, **kwargs)


@pytest.mark.django_db
def test_no_page_shows_english_text_in_french(shop):
    client = Client()
    client.force_login(UserFactory(role="Admin"))
    staff = Client()
    staff.force_login(UserFactory(role="Staff"))
    data, shared = data_values(), shared_words()
    checked = 0
    for url in _pages(shop):
        for who in (client, staff):
            french, english = _get(who, url, "fr"), _get(who, url, "en")
            if url.startswith("/audit/"):
                data = data_values()  # the access log shows the pages just visited
            assert french.status_code == english.status_code, url
            assert '<html lang="fr">' in french.text, url
            assert untranslated(french.text, english.text, data, shared) == [], url
            checked += 1
    assert checked == 2 * len(_pages(shop))


@pytest.mark.django_db
def test_no_message_or_form_error_is_left_in_english(shop):
    staff = Client()
    staff.force_login(UserFactory(role="Staff"))
    data, shared = data_values() | {"Lefebvre", "Zoé"}, shared_words()
    url = reverse("clients:contact-update", args=[shop.pk])
    stale = ContactForm(version=shop.version, base=customer_contact_values(shop)).initial
    pages = {}
    for language in ("fr", "en"):
        headers = {"accept-language": language}
        # Invalid input, then a conflict with a save made meanwhile, then a saved message.
        invalid = {"version": shop.version, "base": stale["base"], "phone": "abc"}
        pages[language, "invalid"] = staff.post(url, invalid, headers=headers).text
        current = Customer.objects.filter(pk=shop.pk)
        current.update(version=shop.version + 1, last_name="Lefebvre")
        conflict = {**invalid, "first_name": "Zoé", "last_name": "Lefèvre", "phone": ""}
        pages[language, "conflict"] = staff.post(url, conflict, headers=headers).text
        current.update(version=shop.version, last_name="Lefèvre")
        saved = staff.post(url, conflict, headers=headers, follow=True)
        pages[language, "saved"] = saved.text
        pages[language, "forbidden"] = _get(
            staff, reverse("notifications:campaign-create"), language
        ).text
    assert "Saisissez un numéro de téléphone" in pages["fr", "invalid"]
    assert "Non enregistré" in pages["fr", "conflict"]
    assert "Contact enregistré." in pages["fr", "saved"]
    for kind in ("invalid", "conflict", "saved", "forbidden"):
        assert untranslated(pages["fr", kind], pages["en", kind], data, shared) == [], kind


@pytest.mark.django_db
def test_anonymous_pages_are_translated(db):
    data, shared = {settings.SHOP_NAME}, shared_words()
    for url in ("/login/", "/logout-done-does-not-exist/"):
        french, english = _get(Client(), url, "fr"), _get(Client(), url, "en")
        assert untranslated(french.text, english.text, data, shared) == [], url
    client = Client()
    user = UserFactory(role="Viewer")
    client.force_login(user)
    french = client.post("/logout/", headers={"accept-language": "fr"}, follow=True)
    assert "Se connecter" in french.text


def test_the_detector_catches_a_forgotten_translate_tag():
    """What the page test relies on: an unmarked string is reported, data is not."""
    french = "<h1>Clients</h1><h2>Nouvelle section</h2><p>Ada Lovelace</p><h3>Forgotten</h3>"
    english = "<h1>Clients</h1><h2>New section</h2><p>Ada Lovelace</p><h3>Forgotten</h3>"
    assert untranslated(french, english, {"Ada Lovelace"}, {"Clients"}) == ["Forgotten"]
    attribute = '<a aria-label="Edit contact">x</a>'
    assert untranslated(attribute, attribute, set(), set()) == ["Edit contact"]


# --- French typography ----------------------------------------------------------------------

# A space that may not break the line: before ":" and inside « », and a narrow one before ; ? !
_FRENCH_SPACE_BEFORE = re.compile(r"(?<![\u00a0\u202f])[:;?!»](?!//)")
_FRENCH_SPACE_AFTER = re.compile(r"«(?!\u00a0)")


def test_french_punctuation_has_a_non_breaking_space_before_it():
    """French writes "Pays : France", "Annulée ; rien", "Sûr ?", « ainsi » with a space before
    (a non-breaking one, so the sign never starts a line): every translation does."""
    wrong = []
    for entry in catalog().translated_entries():
        for text in [entry.msgstr, *entry.msgstr_plural.values()]:
            # Placeholders and URLs are not prose.
            prose = re.sub(r"%\(\w+\)[sd]|https?://\S+", "", text)
            if _FRENCH_SPACE_BEFORE.search(prose) or _FRENCH_SPACE_AFTER.search(prose):
                wrong.append(text)
    assert not wrong, wrong
