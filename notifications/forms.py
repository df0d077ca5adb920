from datetime import datetime, timedelta
from urllib.parse import urlsplit

from django import forms
from django.conf import settings
from django.utils import timezone

from notifications.models import TTL_CHOICES, AudienceKind, Urgency
from notifications.payload import payload_size
from notifications.services import Audience, Message
from notifications.webpush import MAX_PLAINTEXT_SIZE


class AudienceForm(forms.Form):
    """The audience as the Clients/Leads tab sends it (GET) and the compose form carries it."""

    tab = forms.ChoiceField(choices=[("clients", "Clients"), ("leads", "Leads")])
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
        raise forms.ValidationError("Use an http:// or https:// address.")


class ComposeForm(forms.Form):
    title = forms.CharField(max_length=120)
    body = forms.CharField(
        label="Message", widget=forms.Textarea(attrs={"rows": 4, "data-push-counted": ""})
    )
    link = forms.URLField(
        label="Link opened on click",
        max_length=1000,
        assume_scheme="https",
        validators=[_http_url],
        help_text="The page customers land on when they click the notification.",
    )
    icon = forms.URLField(
        label="Icon URL",
        max_length=1000,
        required=False,
        assume_scheme="https",
        validators=[_http_url],
    )
    image = forms.URLField(
        label="Image URL",
        max_length=1000,
        required=False,
        assume_scheme="https",
        validators=[_http_url],
        help_text="Shown large by some browsers (Chrome on Android and Windows).",
    )
    when = forms.ChoiceField(
        label="Send",
        choices=[("now", "Now"), ("later", "Later")],
        initial="now",
        widget=forms.RadioSelect,
    )
    send_at = forms.DateTimeField(
        label="Date and time",
        required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"],
        help_text=f"In the shop's time zone ({settings.TIME_ZONE}).",
    )
    ttl = forms.TypedChoiceField(
        label="Keep trying for",
        choices=TTL_CHOICES,
        coerce=int,
        initial=86400,
        help_text="How long push services keep the message for a device that is offline.",
    )
    urgency = forms.ChoiceField(choices=Urgency.choices, initial=Urgency.NORMAL)

    def __init__(self, *args, base_url: str, **kwargs):
        self.base_url = base_url
        super().__init__(*args, **kwargs)
        self.fields["title"].widget.attrs["data-push-counted"] = ""

    def clean_send_at(self):
        value = self.cleaned_data.get("send_at")
        if value is not None and value <= timezone.now() + timedelta(minutes=1):
            raise forms.ValidationError("Choose a time at least a minute from now.")
        if value is not None and value > timezone.now() + timedelta(days=365):
            raise forms.ValidationError("Choose a time within a year.")
        return value

    def clean(self):
        data = super().clean()
        if data.get("when") == "later" and not data.get("send_at") and "send_at" not in self.errors:
            self.add_error("send_at", "Choose when to send it.")
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
                    f"The notification is {size - MAX_PLAINTEXT_SIZE} bytes too long: push "
                    f"services accept {MAX_PLAINTEXT_SIZE} bytes of content once encrypted "
                    f"within 4 KB. Shorten the title, message or URLs."
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

    def send_at_value(self) -> datetime | None:
        return self.cleaned_data["send_at"] if self.cleaned_data["when"] == "later" else None
