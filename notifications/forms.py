import re
import secrets
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from django import forms
from django.conf import settings
from django.utils import timezone
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _

from notifications.models import TTL_CHOICES, AudienceKind, Urgency
from notifications.payload import payload_size
from notifications.services import Audience, Message
from notifications.webpush import MAX_PLAINTEXT_SIZE


class AudienceForm(forms.Form):
    """The audience as the Clients/Leads tab sends it (GET) and the compose form carries it."""

    tab = forms.ChoiceField(choices=[("clients", _("Clients")), ("leads", _("Leads"))])
    audience = forms.ChoiceField(choices=AudienceKind.choices)
    ids = forms.TypedMultipleChoiceField(coerce=int, required=False)
    query = forms.CharField(required=False, max_length=2000)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Any integer id is accepted here; the selector keeps only the tab's push-accepting ones.
        self.fields["ids"].valid_value = lambda value: str(value).isdigit()

    def to_audience(self) -> Audience:
        data = self.cleaned_data
        return Audience(
            tab=data["tab"],
            kind=data["audience"],
            ids=tuple(sorted(set(data["ids"]))),
            query=data["query"],
        )


def _http_url(value: str) -> None:
    if value and urlsplit(value).scheme not in ("http", "https"):
        raise forms.ValidationError(_("Use an http:// or https:// address."))


# The compose form's one-time token: 24 random bytes in base64url (32 characters).
SEND_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{32}")


def send_token_new() -> str:
    """A fresh one-time token for a compose form."""
    return secrets.token_urlsafe(24)


class ComposeForm(forms.Form):
    # Generated when the page is rendered and stored on the campaign it creates: posting the
    # same page again (Back then Send, a replayed request) cannot create a second campaign.
    send_token = forms.CharField(
        required=False, strip=False, widget=forms.HiddenInput, initial=send_token_new
    )
    title = forms.CharField(label=_("Title"), max_length=120)
    body = forms.CharField(
        label=_("Message"), widget=forms.Textarea(attrs={"rows": 4, "data-push-counted": ""})
    )
    link = forms.URLField(
        label=_("Link opened on click"),
        max_length=1000,
        required=False,
        assume_scheme="https",
        validators=[_http_url],
        help_text=_(
            "The page customers land on when they click the notification. Optional: without "
            "it a click opens the shop’s home page, and clicks are not counted."
        ),
    )
    icon = forms.URLField(
        label=_("Icon URL"),
        max_length=1000,
        required=False,
        assume_scheme="https",
        validators=[_http_url],
    )
    image = forms.URLField(
        label=_("Image URL"),
        max_length=1000,
        required=False,
        assume_scheme="https",
        validators=[_http_url],
        help_text=_("Shown large by some browsers (Chrome on Android and Windows)."),
    )
    when = forms.ChoiceField(
        label=_("Send"),
        choices=[("now", _("Now")), ("later", _("Later"))],
        initial="now",
        widget=forms.RadioSelect,
    )
    send_at = forms.DateTimeField(
        label=_("Date and time"),
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"],
        help_text=format_lazy(_("In the shop’s time zone ({zone})."), zone=settings.TIME_ZONE),
    )
    ttl = forms.TypedChoiceField(
        label=_("Keep trying for"),
        choices=TTL_CHOICES,
        coerce=int,
        initial=86400,
        help_text=_("How long push services keep the message for a device that is offline."),
    )
    urgency = forms.ChoiceField(label=_("Urgency"), choices=Urgency.choices, initial=Urgency.NORMAL)

    def __init__(self, *args, base_url: str, token_required: bool = True, **kwargs):
        self.base_url = base_url
        # Only sending needs the token; the test send (which creates no campaign) carries it on.
        self.token_required = token_required
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)
        self.fields["title"].widget.attrs["data-push-counted"] = ""

    def clean_send_token(self):
        value = self.cleaned_data["send_token"]
        if SEND_TOKEN_RE.fullmatch(value):
            return value
        # The page shown again carries a fresh token, so sending after reading the error is
        # a deliberate new campaign, while the forged or stale request itself creates nothing.
        self.data = self.data.copy()
        self.data[self.add_prefix("send_token")] = send_token_new()
        if self.token_required:
            raise forms.ValidationError(
                _(
                    "This form has expired or is incomplete, so nothing was sent. Check the "
                    "message, then send it again."
                ),
                code="send_token",
            )
        return ""

    def clean_send_at(self):
        value = self.cleaned_data.get("send_at")
        if value is not None and value <= timezone.now() + timedelta(minutes=1):
            raise forms.ValidationError(_("Choose a time at least a minute from now."))
        if value is not None and value > timezone.now() + timedelta(days=365):
            raise forms.ValidationError(_("Choose a time within a year."))
        return value

    def clean(self):
        data = super().clean()
        if data.get("when") == "later" and not data.get("send_at") and "send_at" not in self.errors:
            self.add_error("send_at", _("Choose when to send it."))
        fields = ("title", "body", "icon", "image")
        if all(name in data for name in fields):
            size = payload_size(
                title=data["title"],
                body=data["body"],
                icon=data["icon"],
                image=data["image"],
                base_url=self.base_url,
            )
            if size > MAX_PLAINTEXT_SIZE:
                raise forms.ValidationError(
                    _(
                        "The notification is %(over)d bytes too long: push services accept "
                        "%(max)d bytes of content once encrypted within 4 KB. Shorten the "
                        "title, message or URLs."
                    )
                    % {"over": size - MAX_PLAINTEXT_SIZE, "max": MAX_PLAINTEXT_SIZE}
                )
        return data

    def message(self) -> Message:
        data = self.cleaned_data
        return Message(
            title=data["title"],
            body=data["body"],
            link=data["link"],
            icon=data["icon"],
            image=data["image"],
            ttl=data["ttl"],
            urgency=data["urgency"],
        )

    def send_token_value(self) -> str:
        return self.cleaned_data["send_token"]

    def send_at_value(self) -> datetime | None:
        return self.cleaned_data["send_at"] if self.cleaned_data["when"] == "later" else None


class TestPushForm(forms.Form):
    """Who receives a test of the message before the campaign is sent."""

    test_customer = forms.IntegerField(
        label=_("Client ID"),
        min_value=1,
        max_value=2**63 - 1,
        required=False,
        help_text=_(
            "A customer who accepts notifications (yourself, as a customer of the shop): the "
            "message is sent once to their newest device."
        ),
    )

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)

    def clean_test_customer(self):
        value = self.cleaned_data["test_customer"]
        if value is None:
            raise forms.ValidationError(
                _("Enter the client ID of the customer to send the test to.")
            )
        return value
