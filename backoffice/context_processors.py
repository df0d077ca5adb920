from django.conf import settings


def backoffice(request):
    """Values every back-office page shows: the shop's name and currency."""
    return {"SHOP_NAME": settings.SHOP_NAME, "SHOP_CURRENCY": settings.SHOP_CURRENCY}
