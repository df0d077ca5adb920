"""Forms of the client page. They validate input; the services in clients/services.py save it.

Each edit form carries the version it was read at (`version`) and, signed so it cannot be
forged, the values it was read with (`base`): if someone saves in between, the service
refuses the save and the page shows what they changed.
"""

import re

import phonenumbers
from django import forms
from django.core import signing
from django.core.validators import RegexValidator
from django.utils.translation import gettext_lazy as _

from backoffice.countries import is_country
from backoffice.phones import phone_parse
from clients.models import ADDRESS_FIELDS, Address, Customer

_BASE_SALT = "clients.forms.base"

phone_validator = RegexValidator(
    r"^\+?[0-9][0-9 ().\-/]{3,30}$",
    _("Enter a phone number: digits, spaces and + ( ) . - / only, e.g. +33 6 12 34 56 78."),
)
country_validator = RegexValidator(r"^[A-Z]{2}$", _("Enter a two-letter country code, e.g. FR."))


def _known_country(value: str) -> None:
    """Two letters that name a country (ZZ, XX or QO do not)."""
    if len(value) == 2 and value.isascii() and value.isalpha() and not is_country(value):
        raise forms.ValidationError(
            _("%(code)s is no country's code: enter an ISO code, e.g. FR, DE, US."),
            code="unknown_country",
            params={"code": value},
        )


_DAMAGED = _("This form is damaged or out of date: reload the page and try again.")
_DAMAGED_FORM_ERRORS = {"required": _DAMAGED, "invalid": _DAMAGED, "min_value": _DAMAGED}
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _phone_international(value: str) -> str:
    """A typed phone number in the one format the back office stores ("+33 6 12 34 56 78")."""
    if not value:
        return value
    number = phone_parse(value)
    if number is None:
        raise forms.ValidationError(
            _("This is not a valid phone number: add the country code, e.g. +33 6 12 34 56 78."),
            code="invalid_phone",
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def _no_control_chars(value: str) -> None:
    if _CONTROL_CHARS.search(value):
        raise forms.ValidationError(_("Remove the invisible control characters."))


class CountryCodeField(forms.CharField):
    """An ISO country code, accepted in any case and stored in upper case."""

    def to_python(self, value):
        return super().to_python(value).upper()


class VersionedForm(forms.Form):
    """A form saved with optimistic locking: it posts back what it was read from."""

    version = forms.IntegerField(
        widget=forms.HiddenInput, min_value=0, error_messages=_DAMAGED_FORM_ERRORS
    )
    base = forms.CharField(widget=forms.HiddenInput, error_messages=_DAMAGED_FORM_ERRORS)

    def __init__(self, *args, version: int | None = None, base: dict | None = None, **kwargs):
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        if version is not None:
            self.initial["version"] = version
        if base is not None:
            self.initial["base"] = signing.dumps(base, salt=_BASE_SALT)

    def clean_base(self) -> dict:
        try:
            base = signing.loads(self.cleaned_data["base"], salt=_BASE_SALT)
        except signing.BadSignature:
            raise forms.ValidationError(_DAMAGED) from None
        if not isinstance(base, dict):
            raise forms.ValidationError(_DAMAGED)
        return base

    def rebase(self, *, version: int, base: dict) -> None:
        """After a conflict: keep what the user typed, but base the form on the saved values,
        so saving again is a deliberate choice made knowing what changed."""
        data = self.data.copy()
        data[self.add_prefix("version")] = version
        data[self.add_prefix("base")] = signing.dumps(base, salt=_BASE_SALT)
        self.data = data


class ContactForm(VersionedForm):
    # Shown for reference only: a disabled field ignores whatever a request posts for it.
    email = forms.EmailField(
        label=_("Email"), disabled=True, required=False, help_text=_("Not editable.")
    )
    first_name = forms.CharField(
        label=_("First name"),
        max_length=150,
        required=False,
        strip=True,
        validators=[_no_control_chars],
    )
    last_name = forms.CharField(
        label=_("Last name"),
        max_length=150,
        required=False,
        strip=True,
        validators=[_no_control_chars],
    )
    phone = forms.CharField(
        label=_("Phone"),
        max_length=32,
        required=False,
        strip=True,
        validators=[phone_validator],
        widget=forms.TextInput(attrs={"type": "tel", "autocomplete": "off"}),
    )

    # The read view's order.
    field_order = ["first_name", "last_name", "phone", "email"]

    def clean_phone(self) -> str:
        return _phone_international(self.cleaned_data["phone"])

    def clean(self):
        cleaned = super().clean()
        if not self.errors and not (cleaned.get("first_name") or cleaned.get("last_name")):
            raise forms.ValidationError(_("Enter a first name or a last name."))
        return cleaned


class AddressForm(VersionedForm):
    name = forms.CharField(label=_("Name"), max_length=200, validators=[_no_control_chars])
    company = forms.CharField(
        label=_("Company"), max_length=200, required=False, validators=[_no_control_chars]
    )
    line1 = forms.CharField(
        label=_("Address line 1"), max_length=200, validators=[_no_control_chars]
    )
    line2 = forms.CharField(
        label=_("Address line 2"), max_length=200, required=False, validators=[_no_control_chars]
    )
    postal_code = forms.CharField(
        label=_("Postal code"), max_length=20, validators=[_no_control_chars]
    )
    city = forms.CharField(label=_("City"), max_length=100, validators=[_no_control_chars])
    region = forms.CharField(
        label=_("Region"), max_length=100, required=False, validators=[_no_control_chars]
    )
    country = CountryCodeField(
        label=_("Country"),
        max_length=2,
        min_length=2,
        validators=[country_validator, _known_country],
        help_text=_("Two-letter ISO code, e.g. FR, DE, US."),
    )
    phone = forms.CharField(
        label=_("Phone"),
        max_length=32,
        required=False,
        validators=[phone_validator],
        widget=forms.TextInput(attrs={"type": "tel"}),
    )

    field_order = list(ADDRESS_FIELDS)

    def clean_phone(self) -> str:
        return _phone_international(self.cleaned_data["phone"])


class DefaultAddressesForm(VersionedForm):
    billing = forms.ModelChoiceField(
        queryset=Address.objects.none(),
        label=_("Default billing address"),
        widget=forms.RadioSelect,
        empty_label=None,
    )
    shipping = forms.ModelChoiceField(
        queryset=Address.objects.none(),
        label=_("Default shipping address"),
        widget=forms.RadioSelect,
        empty_label=None,
    )

    def __init__(self, *args, customer: Customer, addresses: list[Address], **kwargs):
        super().__init__(*args, **kwargs)
        # Only the customer's own addresses are valid choices, whatever a request posts.
        queryset = Address.objects.filter(customer=customer).order_by("pk")
        for name in ("billing", "shipping"):
            field = self.fields[name]
            field.queryset = queryset
            # Render from the list the page already loaded instead of querying again.
            field.choices = [(a.pk, str(a)) for a in addresses]


class NoteForm(forms.Form):
    label_suffix = ""
    text = forms.CharField(
        label=_("Note"),
        required=False,
        max_length=10_000,
        widget=forms.Textarea(attrs={"rows": 6}),
        help_text=_("Visible only in the back office."),
    )
    # The id of the newest note version the form was read with ("" when there was none).
    based_on = forms.IntegerField(
        widget=forms.HiddenInput, required=False, min_value=1, error_messages=_DAMAGED_FORM_ERRORS
    )
