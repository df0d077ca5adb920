"""Forms of the privacy pages; the services in privacy/services.py act on them."""

import re
from datetime import timedelta

from django import forms
from django.utils.translation import gettext_lazy as _

from privacy.models import STAFF_SOURCES, Channel

_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _clean_text(value: str) -> str:
    if _CONTROL_CHARS.search(value):
        raise forms.ValidationError(_("Remove the control characters from this text."))
    return value.strip()


class ErasureForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason"),
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_(
            "Why and how the customer asked (e.g. “email of 3 March to the support address”). "
            "Do not quote the customer's name or email: the reason is kept after the erasure."
        ),
    )
    confirm = forms.BooleanField(
        label=_("I understand that, once the grace period is over, this cannot be undone."),
    )

    def clean_reason(self):
        return _clean_text(self.cleaned_data["reason"])


class ConsentForm(forms.Form):
    channel = forms.ChoiceField(
        label=_("Channel"), choices=[(c.value, c.label) for c in (Channel.EMAIL, Channel.SMS)]
    )
    granted = forms.TypedChoiceField(
        label=_("Consent"),
        choices=[("1", _("Given")), ("0", _("Withdrawn"))],
        coerce=lambda value: value == "1",
        widget=forms.RadioSelect,
    )
    source = forms.ChoiceField(
        label=_("How the customer said it"), choices=[(s.value, s.label) for s in STAFF_SOURCES]
    )
    wording = forms.CharField(
        label=_("Wording or its version"),
        max_length=500,
        required=False,
        help_text=_("What the customer was asked, or the version of the text (optional)."),
    )
    note = forms.CharField(
        label=_("Note"),
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("When and how, in a few words: it is the proof of the consent."),
    )

    def clean_wording(self):
        return _clean_text(self.cleaned_data["wording"])

    def clean_note(self):
        note = _clean_text(self.cleaned_data["note"])
        if not note:
            raise forms.ValidationError(_("Write a note: it is the proof of the consent."))
        return note


class RetentionConfirmForm(forms.Form):
    """The cutoff the Admin previewed, the counts shown for it, and the Admin's confirmation
    that they are erased for good: the sweep erases exactly what was counted and confirmed."""

    cutoff = forms.DateTimeField(widget=forms.HiddenInput)
    leads = forms.IntegerField(min_value=0, widget=forms.HiddenInput)
    clients = forms.IntegerField(min_value=0, widget=forms.HiddenInput)
    # The label, with the counts, is in templates/privacy/overview.html.
    confirm = forms.BooleanField(
        error_messages={
            "required": _("Tick the box to confirm: the erasure cannot be undone."),
        },
    )

    def __init__(self, *args, latest=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.latest = latest

    def clean_confirm(self):
        # Only what a ticked box posts: the widget reads "0" or "no" as ticked too.
        if self.data.get(self.add_prefix("confirm")) != "on":
            raise forms.ValidationError(self.fields["confirm"].error_messages["required"])
        return True

    def clean_cutoff(self):
        cutoff = self.cleaned_data["cutoff"]
        if self.latest is not None and cutoff > self.latest:
            raise forms.ValidationError(_("The retention period has not passed for this date."))
        if self.latest is not None and cutoff < self.latest - timedelta(days=1):
            raise forms.ValidationError(_("This preview is out of date: look at the counts again."))
        return cutoff
