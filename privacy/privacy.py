"""The privacy app's own records about a customer, and Django admin's log of edits."""

from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db.models import CharField, Value
from django.db.models.functions import Cast, Replace

from clients.models import Customer
from privacy.models import ConsentRecord, DataArchive, ErasureRequest
from privacy.registry import Erasure, register
from privacy.serialize import rows

ERASED = "[erased]"


def erase(erasure: Erasure) -> None:
    # The ledger proves consents while the data is used; with the data gone it would only
    # keep the staff notes about the person.
    ConsentRecord.objects.filter(customer__in=erasure.customers)._raw_delete(
        ConsentRecord.objects.db
    )
    DataArchive.objects.filter(customer__in=erasure.customers).delete()
    # An erasure request's reason is kept (why the data went), without quoting the person.
    for customer_id, values in erasure.values.items():
        requests = ErasureRequest.objects.filter(customer_id=customer_id)
        for value in values:
            if len(value) >= 3:
                requests.update(reason=Replace("reason", Value(value), Value(ERASED)))
    LogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(Customer),
        object_id__in=Customer.objects.filter(pk__in=erasure.customers)
        .annotate(text_id=Cast("pk", CharField()))
        .values("text_id"),
    ).update(object_repr=ERASED, change_message="")


def export(customer: Customer) -> dict[str, list[dict]]:
    return {
        "consents": rows(
            ConsentRecord.objects.filter(customer=customer).order_by("at", "pk"),
            "id",
            "channel",
            "granted",
            "at",
            "source",
            "wording",
            "note",
            "subscription_id",
            recorded_by="recorded_by__username",
        ),
        "erasure_requests": rows(
            ErasureRequest.objects.filter(customer=customer).order_by("requested_at", "pk"),
            "id",
            "source",
            "reason",
            "requested_at",
            "due_at",
            "cancelled_at",
            "done_at",
        ),
    }


register(
    "privacy",
    models=(ConsentRecord, ErasureRequest, DataArchive, LogEntry),
    erase=erase,
    export=export,
    order=1000,
)
