"""What an import keeps of the customers' personal data: the uploaded file until the import is
applied, and its checked rows until one of their customers is erased (privacy/)."""

import pytest
from django.core.files.storage import default_storage

from clients.models import Customer
from imports.models import ImportRow
from privacy.services import customers_erase
from tests.factories import UserFactory
from tests.imports.conftest import apply, check, upload

pytestmark = pytest.mark.django_db


def test_the_uploaded_file_is_deleted_once_applied(django_capture_on_commit_callbacks):
    job = check(upload("shopify_customers_export.csv"))
    name = job.file.name
    assert default_storage.exists(name)
    with django_capture_on_commit_callbacks(execute=True):
        apply(job, UserFactory(role="Admin"))
    assert not default_storage.exists(name)


def test_erasing_a_customer_deletes_the_import_rows_about_them():
    job = apply(check(upload("shopify_customers_export.csv")), UserFactory(role="Admin"))
    imported = Customer.objects.filter(email__iexact="amelie.poulain@example.fr")
    email = imported.get().email.lower()
    rows_before = ImportRow.objects.filter(job=job).count()
    assert ImportRow.objects.filter(key=email).exists()
    customers_erase(customers=imported)
    assert not ImportRow.objects.filter(key=email).exists()
    assert not ImportRow.objects.filter(values__icontains="poulain").exists()
    # The other customers' rows stay.
    assert ImportRow.objects.filter(job=job).count() == rows_before - 1
