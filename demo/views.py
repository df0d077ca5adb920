"""The demo storefront: a page that plays the shop's storefront so a demo customer can be
subscribed to push notifications from a real browser (DEBUG only)."""

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import Http404
from django.shortcuts import render

from clients.models import Customer
from notifications.tokens import storefront_token_issue


@login_not_required
def storefront(request):
    """DEBUG only: a storefront page to subscribe a demo customer from a real browser."""
    if not settings.DEBUG:
        raise Http404("The demo storefront exists only with DEBUG on.")
    customers = list(Customer.objects.order_by("pk").only("pk", "email")[:20])
    chosen = request.GET.get("customer", "")
    customer = next(
        (c for c in customers if str(c.pk) == chosen), customers[0] if customers else None
    )
    return render(
        request,
        "demo/storefront.html",
        {
            "customers": customers,
            "customer": customer,
            "token": storefront_token_issue(customer_id=customer.pk) if customer else "",
        },
    )
