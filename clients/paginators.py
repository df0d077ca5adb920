"""Paginators that keep the Clients and Leads tabs cheap at a million customers."""

from django.core.paginator import EmptyPage, Page, PageNotAnInteger, Paginator
from django.utils.functional import cached_property

# A search or filter counts its matches up to this many; past it the page says "more than".
COUNT_CAP = 10_000


class CappedCountPaginator(Paginator):
    """Pages of a searched or filtered list, counting at most COUNT_CAP + 1 matches.

    Counting every match of a broad filter ("source is google": a quarter of a million
    customers) costs more than the rest of the page. Up to COUNT_CAP matches the numbers are
    exact, as with Django's Paginator; past it the paginator reports `capped`, the page says
    "more than 10,000" and offers Next (known by reading one row more than the page) instead
    of a last page, and a page past the end raises EmptyPage. Every number shown stays true.
    """

    cap = COUNT_CAP

    @cached_property
    def count(self) -> int:
        rows = self.object_list
        # django-tables2 hands over its rows; count on the queryset underneath them.
        queryset = getattr(getattr(rows, "data", None), "data", rows)
        return queryset.order_by()[: self.cap + 1].count()

    @property
    def capped(self) -> bool:
        return self.count > self.cap

    def validate_number(self, number):
        if not self.capped:
            return super().validate_number(number)
        try:
            number = int(number)
        except (TypeError, ValueError):
            raise PageNotAnInteger("That page number is not an integer") from None
        if number < 1:
            raise EmptyPage("That page number is less than 1")
        return number

    def page(self, number):
        if not self.capped:
            return super().page(number)
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        rows = list(self.object_list[bottom : bottom + self.per_page + 1])
        if not rows and number > 1:
            raise EmptyPage("That page contains no results")
        return OpenEndedPage(
            rows[: self.per_page], number, self, has_next=len(rows) > self.per_page
        )


class OpenEndedPage(Page):
    """A page of a list whose exact length was not counted."""

    def __init__(self, object_list, number, paginator, *, has_next: bool):
        super().__init__(object_list, number, paginator)
        self._has_next = has_next

    def has_next(self) -> bool:
        return self._has_next

    def start_index(self) -> int:
        return (self.number - 1) * self.paginator.per_page + 1 if self.object_list else 0

    def end_index(self) -> int:
        return (self.number - 1) * self.paginator.per_page + len(self.object_list)
