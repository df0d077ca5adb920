"""Reads of tags: the library with its counts, a customer's tags, bulk jobs."""

from django.db.models import CharField, Count, OuterRef, QuerySet, StringAgg, Subquery, Value
from django.db.models.functions import Cast, Coalesce, Concat

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


# Separators of tags_of_customer()'s text; tag names hold no control characters.
_FIELD, _ITEM = "\x1e", "\x1f"


def tags_of_customer() -> Subquery:
    """The outer customer's tags as one text value (an annotation of the client page's
    customer query, so that the tags cost no query of their own); read by customer_tags()."""
    pairs = (
        CustomerTag.objects.filter(customer=OuterRef("pk"))
        .order_by()
        .values("customer")
        .annotate(
            text=StringAgg(
                Concat(Cast("tag_id", CharField()), Value(_FIELD), "tag__name"),
                delimiter=Value(_ITEM),
            )
        )
        .values("text")
    )
    return Subquery(pairs, output_field=CharField())


def customer_tags(text: str | None) -> list[Tag]:
    """The tags of tags_of_customer()'s text, by name."""
    tags = []
    for item in (text or "").split(_ITEM):
        if item:
            pk, name = item.split(_FIELD, 1)
            tags.append(Tag(pk=int(pk), name=name))
    return sorted(tags, key=lambda tag: (tag.name.casefold(), tag.pk))


def tag_jobs() -> QuerySet[TagJob]:
    """Bulk tag jobs, newest first."""
    return TagJob.objects.select_related("created_by").order_by("-created_at", "-id")
