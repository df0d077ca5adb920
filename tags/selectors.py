"""Reads of tags: the library with its counts, a customer's tags, bulk jobs."""

from django.db.models import Count, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from tags.models import CustomerTag, Tag, TagJob


def tag_choices() -> list[tuple[int, str]]:
    """Every tag as (id, name), by name."""
    return list(Tag.objects.order_by("name", "pk").values_list("pk", "name"))


def tag_library() -> QuerySet[Tag]:
    """Every tag with `customers`, how many customers carry it, by name."""
    carried = (
        CustomerTag.objects.filter(tag=OuterRef("pk"))
        .order_by()
        .values("tag")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Tag.objects.annotate(customers=Coalesce(Subquery(carried), Value(0))).order_by(
        "name", "pk"
    )


def customer_tags(*, customer_id: int) -> list[Tag]:
    """A customer's tags, by name."""
    return list(
        Tag.objects.filter(
            pk__in=CustomerTag.objects.filter(customer_id=customer_id).values("tag_id")
        ).order_by("name", "pk")
    )


def tag_jobs() -> QuerySet[TagJob]:
    """Bulk tag jobs, newest first."""
    return TagJob.objects.select_related("created_by").order_by("-created_at", "-id")
