"""An import's checked rows hold each row's values as the file gave them (name, email, phone,
addresses): an erasure deletes the rows about the erased customers, found by their email (the
rows' key, lowercased) or their shop id. The uploaded file itself is deleted when the import is
applied or cancelled; the rows of an applied import IMPORT_RETENTION_DAYS later; an import left
waiting (neither applied nor cancelled) is cancelled IMPORT_ABANDONED_DAYS after it was last
touched, its file and rows deleted (`expire`, run by the daily privacy task). Nothing goes in
the customer's archive: the rows are a copy of what the profile and the change history
already hold."""

from datetime import datetime

from django.db.models.functions import Lower

from clients.models import Customer
from imports.models import ImportRow
from imports.services import import_abandoned_expire, import_rows_expire
from privacy.registry import Erasure, register


def erase(erasure: Erasure) -> None:
    # Runs before the customers' own rows are anonymized: their emails are still there.
    erased = Customer.objects.filter(pk__in=erasure.customers)
    ImportRow.objects.filter(key__in=erased.annotate(key=Lower("email")).values("key")).delete()
    ImportRow.objects.filter(
        external_id__in=erased.exclude(external_id="").values("external_id")
    ).delete()


def expire(now: datetime) -> int:
    return import_rows_expire(now=now) + import_abandoned_expire(now=now)


register("imports", models=(ImportRow,), erase=erase, expire=expire)
