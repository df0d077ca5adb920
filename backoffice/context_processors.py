from django.conf import settings
from django.utils.translation import gettext as _

# The menu's sections (base.html marks the current one), by the start of the page's path.
MENU_SECTIONS = (
    ("/clients/", "clients"),
    ("/orders/", "clients"),
    ("/lifecycle/", "lifecycle"),
    ("/tags/", "tags"),
    ("/push/", "push"),
    ("/imports/", "imports"),
    ("/settings/", "settings"),
    ("/privacy/", "privacy"),
    ("/audit/", "privacy"),
)


def backoffice(request):
    """Values every back-office page shows: the shop's name and currency, the user's role and
    the menu's current section (part of the cached menu's key, with the language and the
    permissions)."""
    return {
        "SHOP_NAME": settings.SHOP_NAME,
        "SHOP_CURRENCY": settings.SHOP_CURRENCY,
        "role": _role(request.user) if hasattr(request, "user") else "",
        "menu_section": menu_section(request.path),
    }


def menu_section(path: str) -> str:
    for start, section in MENU_SECTIONS:
        if path.startswith(start):
            return section
    return ""


def _role(user) -> str:
    # Read from the permissions (cached on the user for the request), not from group names.
    if not user.is_authenticated:
        return ""
    if user.is_superuser:
        return _("Superuser")
    if user.has_perm("notifications.send_campaign"):
        return _("Admin")
    if user.has_perm("clients.change_customer"):
        return _("Staff")
    if user.has_perm("clients.view_customer"):
        return _("Viewer")
    return ""
