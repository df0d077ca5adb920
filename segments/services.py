"""Every write to saved segments. A segment's definition is checked like a list's query
string: only the search and filter keys, every value valid, at least one of them set."""

from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models.functions import Lower
from django.http import QueryDict
from django.utils import timezone
from django.utils.translation import gettext as _

from clients.filters import CustomerFilter, filter_keys
from clients.models import Customer
from clients.selectors import TABS
from segments.models import SEGMENT_NAME_MAX_LENGTH, SEGMENT_QUERY_MAX_LENGTH, Segment

TAG_KEYS = ("tags_any", "tags_all", "tags_none")


@dataclass(frozen=True)
class SegmentError(Exception):
    """A segment that cannot be saved; `message` is for the user."""

    message: str

    def __str__(self):
        return self.message


def clean_segment_name(raw: str) -> str:
    name = " ".join(str(raw).split())
    if not name:
        raise SegmentError(_("A segment needs a name."))
    if len(name) > SEGMENT_NAME_MAX_LENGTH or not name.isprintable():
        raise SegmentError(
            _("A segment name has at most %(max)s printable characters.")
            % {"max": SEGMENT_NAME_MAX_LENGTH}
        )
    return name


def clean_definition(*, tab: str, query: str) -> str:
    """The definition as stored: the valid search and filter keys of `query`, in a stable
    order. SegmentError for an unknown tab or key, an invalid value, or no filter at all."""
    if tab not in TABS:
        raise SegmentError(_("Unknown tab: choose Clients or Leads."))
    if len(query) > SEGMENT_QUERY_MAX_LENGTH:
        raise SegmentError(_("This search and filters are too long to save."))
    params = QueryDict(query)
    unknown = sorted(set(params) - filter_keys())
    if unknown:
        raise SegmentError(_("Unknown filter: %(names)s.") % {"names": ", ".join(unknown)[:200]})
    filterset = CustomerFilter(params, queryset=Customer.objects.none())
    if not filterset.is_valid():
        raise SegmentError(
            _("The search and filters are not valid: %(errors)s")
            % {"errors": filterset.errors_text()}
        )
    if not filterset.active:
        raise SegmentError(_("Search or filter the list first: a segment without any is the tab."))
    kept = QueryDict(mutable=True)
    for key in sorted(params):
        values = [value for value in params.getlist(key) if value != ""]
        if values:
            kept.setlist(key, values)
    return kept.urlencode()


@transaction.atomic
def segment_create(*, actor, name: str, tab: str, query: str) -> Segment:
    """Save a tab's search and filters under a name (unique on the tab, ignoring case)."""
    name = clean_segment_name(name)
    definition = clean_definition(tab=tab, query=query)
    _check_name_free(name=name, tab=tab, exclude=None)
    now = timezone.now()
    try:
        with transaction.atomic():
            return Segment.objects.create(
                name=name,
                tab=tab,
                query=definition,
                created_by=actor,
                created_at=now,
                updated_at=now,
            )
    except IntegrityError:
        raise SegmentError(_("A segment of this name exists already.")) from None


@transaction.atomic
def segment_update(*, segment: Segment, name: str, query: str | None = None) -> Segment:
    """Rename a segment and, when `query` is given, replace its definition."""
    segment.name = clean_segment_name(name)
    if query is not None:
        segment.query = clean_definition(tab=segment.tab, query=query)
    _check_name_free(name=segment.name, tab=segment.tab, exclude=segment.pk)
    segment.updated_at = timezone.now()
    segment.save(update_fields=["name", "query", "updated_at"])
    return segment


@transaction.atomic
def segment_delete(*, segment: Segment) -> None:
    """Delete a segment (campaigns already created from it keep their own copy)."""
    segment.delete()


def _check_name_free(*, name: str, tab: str, exclude: int | None) -> None:
    taken = Segment.objects.annotate(key=Lower("name")).filter(key=name.lower(), tab=tab)
    if exclude is not None:
        taken = taken.exclude(pk=exclude)
    if taken.exists():
        raise SegmentError(_("A segment of this name exists already."))


def segments_replace_tag(*, old: int, new: int | None) -> int:
    """In every definition naming tag `old`, name `new` instead (a merge) or drop it (a
    deletion; a definition left without any filter is kept, and reported as invalid when
    used). Called by the tag services in their transaction; returns how many changed."""
    changed = 0
    for segment in Segment.objects.select_for_update().filter(query__contains="tags_"):
        params = QueryDict(segment.query, mutable=True)
        touched = False
        for key in TAG_KEYS:
            values = params.getlist(key)
            if str(old) not in values:
                continue
            touched = True
            values = [v for v in values if v != str(old)]
            if new is not None and str(new) not in values:
                values.append(str(new))
            params.setlist(key, values)
        if touched:
            segment.query = params.urlencode()
            segment.updated_at = timezone.now()
            segment.save(update_fields=["query", "updated_at"])
            changed += 1
    return changed
