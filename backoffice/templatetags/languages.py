"""The language switch's choices (registered as a builtin in settings)."""

import functools

from django import template
from django.conf import settings
from django.utils.text import capfirst
from django.utils.translation import get_language_info

register = template.Library()


@register.simple_tag
@functools.cache
def switch_languages() -> tuple[tuple[str, str], ...]:
    """(code, name in that language) of each language, worked out once: every page shows the
    switch, and get_language_info_list rebuilt it on each of them."""
    return tuple(
        (code, capfirst(get_language_info(code)["name_local"])) for code, _ in settings.LANGUAGES
    )
