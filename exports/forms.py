from django import forms
from django.utils.translation import gettext_lazy as _

from clients.selectors import TABS
from exports.models import ExportFormat, ExportScope
from exports.selectors import MAX_QUERY_LENGTH


class ExportForm(forms.Form):
    """What the list's Export form posts: the tab, which rows, the format, and the list's
    search and filters and sort (the ticked ids come from the session, never the form)."""

    tab = forms.ChoiceField(choices=[(tab, tab) for tab in TABS])
    scope = forms.ChoiceField(label=_("Rows"), choices=ExportScope.choices)
    file_format = forms.ChoiceField(label=_("Format"), choices=ExportFormat.choices)
    query = forms.CharField(required=False, max_length=MAX_QUERY_LENGTH, strip=False)
    sort = forms.CharField(required=False, max_length=30)

    def errors_text(self) -> str:
        return " ".join(
            f"{self.fields[name].label or name}: {' '.join(errors)}"
            for name, errors in self.errors.items()
        )
