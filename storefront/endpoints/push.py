"""Web push subscriptions, from the customer's browser (customer token) or the shop's servers
(API key with push:write). The older /push/storefront/ URLs still work (deprecated)."""

from typing import Annotated

from ninja import Router, Status
from pydantic import Field

from clients.models import Customer
from notifications import services
from notifications.storefront import BadRequest
from notifications.storefront import _subscription as subscription_validate
from notifications.webpush import vapid_configured, vapid_get
from storefront.auth import ApiKeyAuth, CustomerTokenAuth
from storefront.models import Scope
from storefront.problems import Problem, field_error
from storefront.schemas import Id, In, Out, Text

router = Router()
WRITE = [CustomerTokenAuth(), ApiKeyAuth(Scope.PUSH_WRITE)]


class SubscriptionKeys(In):
    p256dh: Text(100, 1)
    auth: Text(50, 1)


class Subscription(In):
    """What the browser's `PushSubscription.toJSON()` returns."""

    endpoint: Annotated[
        str,
        Field(
            min_length=9,
            max_length=1024,
            pattern=r"^https?://[^\x00-\x20\x7f]+$",
            json_schema_extra={"format": "uri"},
            description="The push service's URL for this browser (https).",
        ),
    ]
    expirationTime: int | float | None = None
    keys: SubscriptionKeys


class SubscribeIn(In):
    subscription: Subscription
    customer_id: Id | None = Field(None, description="With an API key: whose browser it is.")


class UnsubscribeIn(In):
    endpoint: Text(1024, 1)
    customer_id: Id | None = None


class ResubscribeIn(In):
    old_endpoint: Text(1024, 1)
    old_auth: Text(50, 1)
    subscription: Subscription


class KeyOut(Out):
    public_key: str


class SubscribedOut(Out):
    subscribed: bool


class UnsubscribedOut(Out):
    unsubscribed: bool


def _customer(request, customer_id: int | None) -> Customer:
    caller = request.auth
    if caller.is_customer:
        if customer_id not in (None, caller.customer_id):
            raise Problem("forbidden", "A customer token acts on its own customer only.")
        customer_id = caller.customer_id
    elif customer_id is None:
        raise field_error("customer_id", "is required with an API key")
    customer = Customer.objects.filter(pk=customer_id, erased_at=None).first()
    if customer is None:
        if caller.is_customer:
            raise Problem("unauthenticated", "The customer token is invalid or expired.")
        raise field_error("customer_id", "is not a customer")
    return customer


def _validated(subscription: Subscription) -> dict:
    try:
        return subscription_validate(subscription.model_dump())
    except BadRequest as exc:
        raise field_error("subscription", str(exc)) from None


@router.get("/key", response=KeyOut, url_name="push-key")
def push_key(request):
    """The VAPID public key browsers subscribe with (`applicationServerKey`)."""
    if not vapid_configured():
        raise Problem("unavailable", "Web push is not configured (no VAPID key).")
    return {"public_key": vapid_get().public_key}


@router.post("/subscriptions", response={201: SubscribedOut}, auth=WRITE, url_name="push-subscribe")
def push_subscribe(request, payload: SubscribeIn):
    """The customer accepted notifications in a browser: store its subscription."""
    customer = _customer(request, payload.customer_id)
    services.subscription_save(
        customer=customer,
        user_agent=request.headers.get("User-Agent", "")[:300],
        **_validated(payload.subscription),
    )
    return Status(201, {"subscribed": True})


@router.post(
    "/subscriptions/remove",
    response=UnsubscribedOut,
    auth=WRITE,
    url_name="push-unsubscribe",
)
def push_unsubscribe(request, payload: UnsubscribeIn):
    """The customer turned notifications off in a browser."""
    customer = _customer(request, payload.customer_id)
    removed = services.subscription_remove(endpoint=payload.endpoint, customer=customer)
    return {"unsubscribed": removed}


@router.post("/subscriptions/replace", response={201: SubscribedOut}, url_name="push-resubscribe")
def push_resubscribe(request, payload: ResubscribeIn):
    """The browser renewed its subscription (the service worker's pushsubscriptionchange):
    no token there, so the old subscription's auth secret proves it is the same browser."""
    saved = services.subscription_replace(
        old_endpoint=payload.old_endpoint,
        old_auth=payload.old_auth.rstrip("="),
        **_validated(payload.subscription),
    )
    if saved is None:
        raise Problem("forbidden", "Unknown subscription.")
    return Status(201, {"subscribed": True})
