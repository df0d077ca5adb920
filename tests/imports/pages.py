"""An import in each state a page shows, for the page tests (translations, query counts)."""

from django.urls import reverse
from django.utils import timezone

from clients.models import Customer
from imports.models import ImportJob, ImportRow


def checked_job(*, refused: int = 3, updates: int = 2, noted: int = 1, user=None) -> ImportJob:
    """A checked Shopify import with refused rows, updates and rows imported with a note (no
    file is read by the pages); the updates name the first customer, if there is one, so
    their text is the shop's data."""
    email = Customer.objects.order_by("pk").values_list("email", flat=True).first() or "a@b.fr"
    job = ImportJob.objects.create(
        kind="customers",
        file="imports/customers_export.csv",
        file_name="customers_export.csv",
        file_size=2048,
        created_by=user,
        created_at=timezone.now(),
        status="checked",
        format="shopify",
        encoding="utf-8",
        delimiter=",",
        headers=["Email", "First Name", "Tags"],
        mapping=["email", "first_name", ""],
        total_rows=refused + updates + noted,
        checked_rows=refused + updates + noted,
        checked_at=timezone.now(),
        counts={"refused": refused, "update": updates, "create": noted, "noted": noted},
    )
    ImportRow.objects.bulk_create(
        [
            ImportRow(
                job=job,
                ordinal=n + 1,
                line=n + 2,
                action="refused",
                reasons=[["invalid_email", f"bad{n}@"]],
            )
            for n in range(refused)
        ]
        + [
            ImportRow(
                job=job,
                ordinal=refused + n + 1,
                line=refused + n + 2,
                action="update",
                key=email,
                values={"email": email},
                changes={"first_name": ["Lefèvre", "Zéphyrine"], "email_consent": ["", True]},
            )
            for n in range(updates)
        ]
        + [
            ImportRow(
                job=job,
                ordinal=refused + updates + n + 1,
                line=refused + updates + n + 2,
                action="create",
                key=email,
                values={"email": email},
                reasons=[["incomplete_address", "FR"]],
            )
            for n in range(noted)
        ]
    )
    return job


def import_pages() -> list[str]:
    """The import pages, for the translation check: the list, a checked import, its columns."""
    job = ImportJob.objects.order_by("pk").first() or checked_job()
    return [
        reverse("imports:job-list"),
        job.get_absolute_url(),
        reverse("imports:job-mapping", args=[job.pk]),
    ]
