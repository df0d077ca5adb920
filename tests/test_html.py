"""backoffice/html.py's `escaped` gives what Django's conditional_escape gives, on hostile,
safe, lazy and non-string values, and format_html takes its results as they are."""

from decimal import Decimal

import pytest
from django.utils.functional import lazy
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import SafeData, mark_safe
from django.utils.translation import gettext_lazy

from backoffice.html import escaped

HOSTILE = "<script>alert('x')</script> & \"q\" {} {0} é"


class Markup:
    def __html__(self):
        return "<b>own</b>"


VALUES = [
    HOSTILE,
    "",
    mark_safe("<i>safe</i> &amp;"),
    gettext_lazy("Clients"),
    lazy(lambda: HOSTILE, str)(),
    lazy(lambda: mark_safe("<i>lazy safe</i>"), str)(),
    12,
    Decimal("-1234.50"),
    None,
    Markup(),
    type("S", (str,), {})(HOSTILE),  # a str subclass
]


@pytest.mark.parametrize("value", VALUES)
def test_escaped_is_conditional_escape(value):
    result = escaped(value)
    assert str(conditional_escape(result)) == str(conditional_escape(value))
    if not isinstance(value, Markup):
        assert isinstance(result, SafeData)
    template = "<a title='{}'>{x}</a>"
    assert format_html(template, result, x=result) == format_html(template, value, x=value)
