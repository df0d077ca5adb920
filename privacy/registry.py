"""Where each app declares the personal data it holds about customers.

Every app with data about a customer adds a `privacy.py` module that calls `register()` once
(the privacy app imports every installed app's `privacy` module at start, as the Django admin
does with `admin.py`). A registration says:

- `models`: the app's models that hold personal data about customers. Every model with a
  foreign key to `clients.Customer` must be listed by some registration
  (`tests/privacy/test_registry.py` checks it), so a new table cannot be forgotten.
- `erase(erasure)`: anonymizes or deletes that data for the customers of `erasure.customers`
  (a queryset of ids, possibly hundreds of thousands: work on sets, never row by row). It
  runs inside the erasure's transaction, before the customer row itself is anonymized;
  `erasure.values` holds each erased customer's personal values when the erasure is of a few
  customers (an access request, not a retention sweep), for free text that may quote them.
- `export(customer)`: what the customer's data archive holds from the app, as
  `{"section": [row dict, ...]}`; every value JSON-serializable (datetimes as ISO 8601,
  decimals as strings). Each section becomes `<section>.csv` and a key of `data.json`.
- `expire(now)`: deletes what the app keeps only for a while (its own retention period, a
  setting of the app) and is past it at `now`; returns how many rows went. The daily privacy
  task runs every app's (`privacy.services.kept_data_expire`).
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import QuerySet


@dataclass(frozen=True)
class Erasure:
    """What an erase hook is given."""

    # Ids of the customers being erased (a values_list("pk") queryset or a list).
    customers: QuerySet | list
    at: datetime
    # PRIVACY_KEEP_BILLING_SNAPSHOT: finalized orders keep their billing address (invoices).
    keep_billing_snapshot: bool
    # {customer id: [personal values]} for small erasures; empty for a retention sweep.
    values: dict[int, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class PersonalData:
    app: str
    models: tuple
    erase: Callable[[Erasure], None]
    export: Callable[..., dict[str, list[dict]]] | None = None
    expire: Callable[[datetime], int] | None = None
    # Runs in order: lower first (the customer row itself is anonymized after every hook).
    order: int = 100


_registry: dict[str, PersonalData] = {}


def register(
    app: str,
    *,
    models,
    erase: Callable[[Erasure], None],
    export: Callable[..., dict[str, list[dict]]] | None = None,
    expire: Callable[[datetime], int] | None = None,
    order: int = 100,
) -> None:
    """Declare an app's personal data (see the module's docstring). Registering twice
    replaces the first registration (a module imported again)."""
    _registry[app] = PersonalData(
        app=app, models=tuple(models), erase=erase, export=export, expire=expire, order=order
    )


def registrations() -> list[PersonalData]:
    return sorted(_registry.values(), key=lambda r: (r.order, r.app))
