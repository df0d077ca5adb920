from django.conf import settings
from django.utils.translation import gettext as _


def backoffice(request):
    """Values every back-office page shows: the shop's name and currency."""
    return {
        "SHOP_NAME": settings.SHOP_NAME,
        "SHOP_CURRENCY": settings.SHOP_CURRENCY,
        "role": _role(request.user) if hasattr(request, "user") else "",
    }


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
