from django import forms
from django.utils.translation import gettext_lazy as _

from imports import formats
from imports.models import ImportKind


class UploadForm(forms.Form):
    kind = forms.ChoiceField(
        label=_("What the file holds"),
        choices=ImportKind.choices,
        initial=ImportKind.CUSTOMERS,
        widget=forms.RadioSelect,
    )
    file = forms.FileField(
        label=_("File"),
        help_text=_(
            "CSV or XLSX: this back office's export, the customer export of Shopify, "
            "WooCommerce, PrestaShop or Magento (its Customers Main File), Mailchimp's audience "
            "export, or any spreadsheet with a header row."
        ),
    )


DATE_ORDERS = (
    ("dmy", _("Day first: 31/12/2025")),
    ("mdy", _("Month first: 12/31/2025")),
)


class MappingForm(forms.Form):
    """One choice per column of the file: the field it fills, or nothing."""

    date_order = forms.ChoiceField(label=_("Dates written as"), choices=DATE_ORDERS)

    def __init__(self, *args, job, **kwargs):
        super().__init__(*args, **kwargs)
        self.job = job
        choices = [("", _("— not imported —")), *formats.fields_of(job.kind).items()]
        self.columns = []
        for index, header in enumerate(job.headers):
            name = f"column_{index}"
            self.fields[name] = forms.ChoiceField(
                label=header or _("(column without a header)"),
                choices=choices,
                required=False,
                initial=job.mapping[index] if index < len(job.mapping) else "",
            )
            self.columns.append(name)
        self.fields["date_order"].initial = job.date_order

    def column_fields(self):
        return [self[name] for name in self.columns]

    def clean(self):
        data = super().clean()
        mapping = [data.get(name) or "" for name in self.columns]
        chosen = [f for f in mapping if f]
        twice = {f for f in chosen if chosen.count(f) > 1}
        if twice:
            labels = ", ".join(str(formats.fields_of(self.job.kind)[f]) for f in sorted(twice))
            raise forms.ValidationError(
                _("Each field can be filled from one column only: %(fields)s.") % {"fields": labels}
            )
        from imports.services import missing_fields

        missing = missing_fields(self.job, mapping)
        if missing:
            labels = ", ".join(str(formats.fields_of(self.job.kind)[f]) for f in missing)
            raise forms.ValidationError(_("Choose the column of: %(fields)s.") % {"fields": labels})
        data["mapping"] = mapping
        return data
