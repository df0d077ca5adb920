"""Escaping for the hot markup written in Python (the list rows, the spend chart).

Django's `escape` is wrapped by `keep_lazy`, which inspects every argument for lazy
strings on each call: a third of the list rows' CPU went to that wrapper (escape runs for every
value format_html writes). `escaped(value)` is `conditional_escape(value)` computed by Django's
own escape function without the wrapper, so values passed to format_html already escaped go
through its `__html__()` path. The escaping is still Django's, and so is every safe string
(format_html marks the markup safe). tests/test_html.py compares it with conditional_escape.
"""

from django.utils.functional import Promise
from django.utils.html import escape

# Django's escape itself (keep_lazy keeps it, functools.wraps-style, as __wrapped__): it calls
# str() on its argument, so a lazy string is rendered as the wrapper would have rendered it.
_escape = escape.__wrapped__


def escaped(value):
    """conditional_escape(value): a safe string's own markup, anything else escaped."""
    if isinstance(value, Promise):
        value = str(value)
    if hasattr(value, "__html__"):
        return value
    return _escape(value)
