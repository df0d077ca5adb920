"""Every table that refers to customers is declared to the privacy registry."""

from django.apps import apps
from django.db import models

from clients.models import Customer
from privacy.registry import registrations


def _refers_to_customers(model) -> bool:
    return any(
        isinstance(f, models.ForeignKey | models.OneToOneField) and f.related_model is Customer
        for f in model._meta.concrete_fields
    )


def test_every_model_with_a_customer_is_declared():
    declared = {model for r in registrations() for model in r.models}
    missing = [
        m._meta.label
        for m in apps.get_models()
        if m._meta.managed and not m._meta.proxy and _refers_to_customers(m) and m not in declared
    ]
    assert missing == [], (
        "Declare how these tables' personal data is erased and exported (privacy/registry.py)"
    )


def test_the_product_apps_are_registered_in_order():
    names = [r.app for r in registrations()]
    assert {"clients", "orders", "notifications", "storefront", "privacy"} <= set(names)
    assert names[-1] == "privacy"
