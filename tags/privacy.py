"""A customer's tags are staff's labels about the person: an erasure removes them (the tag
library keeps its tags; their counts are read live). The archive lists them by name."""

from clients.models import Customer
from privacy.registry import Erasure, register
from tags.models import CustomerTag, Tag


def erase(erasure: Erasure) -> None:
    CustomerTag.objects.filter(customer__in=erasure.customers).delete()


def export(customer: Customer) -> dict[str, list[dict]]:
    names = Tag.objects.filter(
        pk__in=CustomerTag.objects.filter(customer=customer).values("tag_id")
    ).order_by("name")
    return {"tags": [{"name": tag.name} for tag in names]}


register("tags", models=(CustomerTag,), erase=erase, export=export)
