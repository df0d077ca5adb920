"""Audit actions: one list (AuditAction), each with a label in English and in French, and the
change history shows that label in the page's language."""

import functools
from pathlib import Path

import polib
import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import translation

from clients.models import AuditAction, AuditEntry
from clients.presenters import FIELD_LABELS
from clients.services import audit_record
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db


@functools.cache
def french_catalog() -> polib.POFile:
    return polib.pofile(str(Path(settings.BASE_DIR) / "locale/fr/LC_MESSAGES/django.po"))


@pytest.mark.parametrize("action", AuditAction, ids=lambda a: a.value)
def test_every_audit_action_has_a_french_label(action):
    with translation.override("en"):
        english = str(action.label)
    with translation.override("fr"):
        french = str(action.label)
    assert english and english != action.value.replace("_", " ").capitalize()
    assert french != english, f"{action.value!r} has no French label ({english!r})"


@pytest.mark.parametrize("field", sorted(FIELD_LABELS))
def test_every_field_of_the_history_has_a_french_label(field):
    # Some words are the same in French ("Note"): the catalog must translate it all the same.
    with translation.override("en"):
        english = str(FIELD_LABELS[field])
    entry = french_catalog().find(english)
    assert entry is not None and entry.msgstr, f"{field!r} ({english!r}) is not in the catalog"


def test_an_action_without_a_label_is_refused():
    customer = CustomerFactory()
    with pytest.raises(ValueError):
        audit_record(customer=customer, actor=None, action="push_opt_out", changes={})
    assert not AuditEntry.objects.exists()


def test_the_french_history_names_the_push_consent_change(viewer_client):
    customer = CustomerFactory()
    audit_record(
        customer=customer,
        actor=None,
        action=AuditAction.PUSH_OPT_IN,
        changes={"push_opt_in": [False, True]},
    )
    url = reverse("clients:client-detail", args=[customer.pk])
    french = viewer_client.get(url, headers={"accept-language": "fr"}).text
    history = french[french.index('id="history"') :]
    assert "Consentement aux notifications push modifié" in history
    assert "Push opt in" not in history and "True" not in history
    assert "<del>Non</del> → <ins>Oui</ins>" in history
    english = viewer_client.get(url, headers={"accept-language": "en"}).text
    history = english[english.index('id="history"') :]
    assert "Push notifications consent changed" in history
    assert "<del>No</del> → <ins>Yes</ins>" in history


def test_an_order_event_names_its_order_beside_the_action_not_as_a_change(viewer_client):
    # It read "Order: (empty) → SIM-…", as if the order itself had changed.
    from orders.models import OrderStatus
    from tests.factories import make_order

    customer = CustomerFactory()
    order = make_order(customer, total="10.00", status=OrderStatus.PENDING)
    audit_record(
        customer=customer,
        actor=None,
        action=AuditAction.ORDER_PAY,
        changes={"order": order.number, "status": ["pending", "paid"]},
    )
    page = viewer_client.get(reverse("clients:client-detail", args=[customer.pk])).text
    history = page[page.index('id="history-title"') :]
    assert f'<span class="nowrap">{order.number}</span>' in history
    assert f"<ins>{order.number}</ins>" not in history
    assert "<ins>Paid</ins>" in history
