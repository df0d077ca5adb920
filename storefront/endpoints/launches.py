"""App launches and website visits: where customers come from."""

from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlsplit

from django.utils import timezone
from ninja import Query, Router, Status
from pydantic import Field

from clients.models import Customer
from storefront.auth import ApiKeyAuth, CustomerTokenAuth
from storefront.endpoints.customers import customer_get
from storefront.models import Launch, Platform, Scope
from storefront.problems import Problem, field_error
from storefront.schemas import AwareDatetime, Id, In, Out, QueryInt, Text
from storefront.services import launch_record

router = Router()
READ = [ApiKeyAuth(Scope.READ)]
# The shop's servers with a key, or the customer's own browser with their token.
WRITE = [ApiKeyAuth(Scope.CUSTOMERS_WRITE), CustomerTokenAuth()]
MAX_AGE = timedelta(days=400)
MAX_AHEAD = timedelta(minutes=5)


class LaunchCreate(In):
    platform: Platform
    occurred_at: AwareDatetime | None = Field(
        None, description="When the app opened or the page loaded; now if left out."
    )
    customer_id: Id | None = Field(
        None,
        description="The logged-in customer, if any (with a customer token: that customer).",
    )
    visitor_id: Text(64) = Field(
        "",
        description="The app's or site's anonymous id for this device; its launches are "
        "linked to the customer at sign-up or login.",
    )
    source: Text(100) = Field("", description="utm_source (or the referring site).")
    medium: Text(100) = Field("", description="utm_medium.")
    campaign: Text(200) = Field("", description="utm_campaign.")
    url: Text(2000) = Field(
        "",
        description="The landing URL or deep link: its utm_source, utm_medium and "
        "utm_campaign are used for the fields left out.",
    )
    referrer: Text(500) = Field(
        "", description="The referring page; without UTM parameters its site is the source."
    )
    device: Text(100) = Field("", description="Device or browser, e.g. 'iPhone 15'.")


class LaunchOut(Out):
    id: int
    customer_id: int | None
    visitor_id: str
    occurred_at: datetime
    platform: str
    device: str
    source: str
    medium: str
    campaign: str
    referrer: str


def _utm(url: str) -> dict[str, str]:
    try:
        query = parse_qs(urlsplit(url).query)
    except ValueError:
        raise field_error("url", "is not a URL") from None
    return {
        name: query.get(f"utm_{name}", [""])[0].strip()[:limit]
        for name, limit in (("source", 100), ("medium", 100), ("campaign", 200))
    }


def _referrer_site(referrer: str) -> str:
    try:
        host = urlsplit(referrer).hostname or ""
    except ValueError:
        raise field_error("referrer", "is not a URL") from None
    return host.removeprefix("www.")[:100]


@router.post("/launches", response={201: LaunchOut}, auth=WRITE, url_name="launch-create")
def launch_create(request, payload: LaunchCreate):
    """The app was launched, or the site visited. Orders placed afterwards carry the source
    and medium of the latest launch with a source (within 30 days) unless they give their
    own; the client page shows the first and last source and the recent launches."""
    caller = request.auth
    now = timezone.now()
    if payload.occurred_at and not now - MAX_AGE <= payload.occurred_at <= now + MAX_AHEAD:
        raise field_error("occurred_at", "must be within the last 400 days and not ahead")
    customer_id = payload.customer_id
    if caller.is_customer:
        if customer_id not in (None, caller.customer_id):
            raise Problem("forbidden", "A customer token reports its own customer's launches.")
        customer_id = caller.customer_id
    customer = None
    if customer_id is not None:
        customer = Customer.objects.filter(pk=customer_id, erased_at=None).only("pk").first()
        if customer is None and caller.is_customer:
            raise Problem("unauthenticated", "The customer token is invalid or expired.")
        if customer is None:
            raise field_error("customer_id", "is not a customer")
    values = {"source": payload.source, "medium": payload.medium, "campaign": payload.campaign}
    if payload.url and not payload.source:
        values = {k: v or _utm(payload.url)[k] for k, v in values.items()}
    if not values["source"] and payload.referrer:
        site = _referrer_site(payload.referrer)
        if site:
            values["source"], values["medium"] = site, values["medium"] or "referral"
    launch = launch_record(
        platform=payload.platform,
        occurred_at=payload.occurred_at,
        customer=customer,
        visitor_id=payload.visitor_id,
        referrer=payload.referrer,
        device=payload.device,
        api_key=caller.api_key,
        **values,
    )
    return Status(201, launch)


class LaunchFilters(In):
    limit: QueryInt = Field(20, ge=1, le=100)


@router.get(
    "/customers/{int:customer_id}/launches",
    response=list[LaunchOut],
    auth=READ,
    url_name="customer-launches",
)
def customer_launch_list(request, customer_id: int, filters: Query[LaunchFilters]):
    """The customer's latest launches, newest first."""
    customer_get(customer_id)
    return list(
        Launch.objects.filter(customer_id=customer_id).order_by("-occurred_at", "-id")[
            : filters.limit
        ]
    )
