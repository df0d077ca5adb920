"""The customers ticked for a push on the Clients and Leads tabs, kept in the session.

The choice survives changing page, sort, search or filters: it lives on the server, per tab,
capped at MAX_SELECTED ids (the most a "selected" audience may hold). Only ids of the tab's
push-accepting customers are taken in; the audience is re-filtered again when a campaign is
composed and when it is sent (clients.selectors.customer_audience).
"""

from django.utils.translation import gettext as _

from clients.models import Customer
from clients.search import MAX_PK
from clients.selectors import MAX_SELECTED, TABS

SESSION_KEY = "list_selection"


def selected_ids(session, tab: str) -> list[int]:
    """The ids ticked on `tab`, in the order they were ticked."""
    stored = session.get(SESSION_KEY, {})
    ids = stored.get(tab, []) if isinstance(stored, dict) else []
    return [pk for pk in ids if isinstance(pk, int)][:MAX_SELECTED]


def parse_ids(values: list[str]) -> list[int]:
    """Posted ids as integers; ValueError with a message for the user if one is not."""
    ids = []
    for value in values:
        if not value.isascii() or not value.isdigit() or not 0 < int(value) <= MAX_PK:
            raise ValueError(_("The selection is not valid."))
        ids.append(int(value))
    return list(dict.fromkeys(ids))


def selection_change(session, *, tab: str, action: str, ids: list[int]) -> dict:
    """Add, remove or clear ticked customers of `tab`; the new state and, when not every id
    could be added, why."""
    if tab not in TABS:
        raise ValueError(_("Unknown tab: choose Clients or Leads."))
    current = selected_ids(session, tab)
    message = ""
    if action == "clear":
        current = []
    elif action == "remove":
        gone = set(ids)
        current = [pk for pk in current if pk not in gone]
    elif action == "add":
        wanted = [pk for pk in ids if pk not in set(current)]
        if len(wanted) > MAX_SELECTED:
            wanted = wanted[: MAX_SELECTED + 1]  # enough to know the cap is reached
        allowed = set(
            Customer.objects.filter(TABS[tab], push_opt_in=True, pk__in=wanted).values_list(
                "pk", flat=True
            )
        )
        added = [pk for pk in wanted if pk in allowed]
        room = MAX_SELECTED - len(current)
        if len(added) > room:
            message = _("At most %(max)s customers can be selected.") % {"max": MAX_SELECTED}
            added = added[: max(room, 0)]
        current += added
    else:
        raise ValueError(_("Unknown action: add, remove or clear."))
    stored = session.get(SESSION_KEY)
    stored = dict(stored) if isinstance(stored, dict) else {}
    stored[tab] = current
    session[SESSION_KEY] = stored
    return {
        "tab": tab,
        "ids": current,
        "count": len(current),
        "max": MAX_SELECTED,
        "message": message,
    }
