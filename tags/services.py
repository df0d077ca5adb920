"""Every write to tags: the library (create, rename, merge, delete), a customer's tags, and
bulk tagging jobs. Each change to a customer's tags writes an audit entry for that customer."""

import re
from collections import defaultdict
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models.functions import Lower
from django.http import QueryDict
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from clients.filters import CustomerFilter, filter_keys
from clients.models import AuditAction, AuditEntry, AuditOrigin, Customer
from clients.selectors import TABS
from segments.services import segments_replace_tag
from tags.models import TAG_MAX_LENGTH, CustomerTag, Tag, TagJob, TagJobAction, TagJobStatus

# At most this many tags in one change (a customer's tags, a bulk job).
MAX_TAGS_PER_CHANGE = 20
# A bulk change for at most this many customers runs in the request; above, in the background.
BULK_INLINE_LIMIT = 1000
# Customers handled per transaction by a bulk job (the progress bar moves after each).
BULK_CHUNK = 5000
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class TagError(Exception):
    """A tag change that cannot be made; `message` is for the user."""

    message: str

    def __str__(self):
        return self.message


def clean_tag_name(raw: str) -> str:
    """A tag name as stored: spaces collapsed; TagError if empty, too long or not printable."""
    name = _SPACES.sub(" ", str(raw)).strip()
    if not name:
        raise TagError(_("A tag needs a name."))
    if len(name) > TAG_MAX_LENGTH:
        raise TagError(
            _("A tag name has at most %(max)s characters (“%(start)s…” has %(length)s).")
            % {"max": TAG_MAX_LENGTH, "start": name[:20], "length": len(name)}
        )
    if "," in name or not name.isprintable():
        raise TagError(_("A tag name cannot hold a comma or control characters."))
    return name


def parse_tag_names(text: str) -> list[str]:
    """Comma-separated tag names, cleaned, each once (ignoring case), in the order typed."""
    if len(text) > MAX_TAGS_PER_CHANGE * (TAG_MAX_LENGTH + 2):
        raise TagError(_("Too many tags at once (at most %(max)s).") % {"max": MAX_TAGS_PER_CHANGE})
    names = {}
    for part in text.split(","):
        if part.strip():
            name = clean_tag_name(part)
            names.setdefault(name.casefold(), name)
    if len(names) > MAX_TAGS_PER_CHANGE:
        raise TagError(_("Too many tags at once (at most %(max)s).") % {"max": MAX_TAGS_PER_CHANGE})
    return list(names.values())


def tags_get_or_create(*, names: list[str]) -> list[Tag]:
    """The tags of these names (matched ignoring case), created when new, in the given order."""
    wanted = {name.lower(): name for name in names}
    found = {
        tag.key: tag for tag in Tag.objects.annotate(key=Lower("name")).filter(key__in=list(wanted))
    }
    now = timezone.now()
    for key, name in wanted.items():
        if key not in found:
            try:
                with transaction.atomic():
                    found[key] = Tag.objects.create(name=name, created_at=now, updated_at=now)
            except IntegrityError:  # created meanwhile by someone else
                found[key] = Tag.objects.annotate(key=Lower("name")).get(key=key)
    return [found[key] for key in wanted]


def _pairs(tags) -> list[tuple[int, str]]:
    return [(tag.pk, tag.name) for tag in tags]


def _names(pairs) -> str:
    return ", ".join(sorted((name for _pk, name in pairs), key=str.casefold))


def _audit_rows(*, actor, before: dict[int, list], after: dict[int, list]) -> list[AuditEntry]:
    """One audit entry per customer whose tags changed: tags before -> after (lists of
    (id, name) pairs)."""
    now = timezone.now()
    return [
        AuditEntry(
            customer_id=pk,
            actor=actor,
            at=now,
            action=AuditAction.TAGS_CHANGE,
            origin=AuditOrigin.STAFF,
            changes={"tags": [_names(before[pk]), _names(after[pk])]},
        )
        for pk in before
        if {t[0] for t in before[pk]} != {t[0] for t in after[pk]}
    ]


def _current_tags(customer_ids) -> dict[int, list[tuple[int, str]]]:
    """Each customer's tags as (id, name) pairs (plain tuples: a bulk job reads thousands)."""
    current = defaultdict(list)
    rows = CustomerTag.objects.filter(customer_id__in=customer_ids).values_list(
        "customer_id", "tag_id", "tag__name"
    )
    for customer_id, tag_id, name in rows:
        current[customer_id].append((tag_id, name))
    return current


@transaction.atomic
def customer_set_tags(*, customer: Customer, actor, names: list[str]) -> list[Tag]:
    """Give the customer exactly these tags (new names join the library); audited."""
    # The customer's row lock orders concurrent edits of the same customer's tags.
    Customer.objects.select_for_update().filter(pk=customer.pk).first()
    tags = tags_get_or_create(names=names)
    before = _current_tags([customer.pk]).get(customer.pk, [])
    wanted = {tag.pk for tag in tags}
    CustomerTag.objects.filter(customer=customer).exclude(tag_id__in=wanted).delete()
    CustomerTag.objects.bulk_create(
        [CustomerTag(customer=customer, tag=tag) for tag in tags], ignore_conflicts=True
    )
    AuditEntry.objects.bulk_create(
        _audit_rows(actor=actor, before={customer.pk: before}, after={customer.pk: _pairs(tags)})
    )
    return tags


@transaction.atomic
def tag_rename(*, tag: Tag, name: str) -> Tag:
    """Rename a tag (its customers keep it); refused if another tag has the name."""
    name = clean_tag_name(name)
    if Tag.objects.annotate(key=Lower("name")).filter(key=name.lower()).exclude(pk=tag.pk).exists():
        raise TagError(
            _("A tag named “%(name)s” exists already: merge the two instead.") % {"name": name}
        )
    tag.name = name
    tag.updated_at = timezone.now()
    tag.save(update_fields=["name", "updated_at"])
    return tag


@transaction.atomic
def tag_merge(*, source: Tag, target: Tag, actor) -> int:
    """Move every customer of `source` to `target` and delete `source`; audited per customer
    whose tags changed. Returns how many customers carried `source`."""
    if source.pk == target.pk:
        raise TagError(_("Choose another tag to merge into."))
    customer_ids = list(
        CustomerTag.objects.filter(tag=source).values_list("customer_id", flat=True)
    )
    moved = 0
    for start in range(0, len(customer_ids), BULK_CHUNK):
        chunk = customer_ids[start : start + BULK_CHUNK]
        before = _current_tags(chunk)
        CustomerTag.objects.bulk_create(
            [CustomerTag(customer_id=pk, tag=target) for pk in chunk], ignore_conflicts=True
        )
        after = {
            pk: [t for t in tags if t[0] != source.pk]
            + ([] if any(t[0] == target.pk for t in tags) else [(target.pk, target.name)])
            for pk, tags in before.items()
        }
        AuditEntry.objects.bulk_create(_audit_rows(actor=actor, before=before, after=after))
        moved += len(chunk)
    # Saved segments naming the source tag now name the target.
    segments_replace_tag(old=source.pk, new=target.pk)
    source.delete()
    Tag.objects.filter(pk=target.pk).update(updated_at=timezone.now())
    return moved


@transaction.atomic
def tag_delete(*, tag: Tag, actor) -> int:
    """Delete a tag and take it off its customers (audited); how many carried it."""
    customer_ids = list(CustomerTag.objects.filter(tag=tag).values_list("customer_id", flat=True))
    for start in range(0, len(customer_ids), BULK_CHUNK):
        chunk = customer_ids[start : start + BULK_CHUNK]
        before = _current_tags(chunk)
        after = {pk: [t for t in tags if t[0] != tag.pk] for pk, tags in before.items()}
        AuditEntry.objects.bulk_create(_audit_rows(actor=actor, before=before, after=after))
    segments_replace_tag(old=tag.pk, new=None)
    tag.delete()
    return len(customer_ids)


# --- Bulk tagging ---------------------------------------------------------------------------


def bulk_audience(*, tab: str, ids: list[int], query: str):
    """The customers of a bulk change, resolved on the server: the tab's customers among
    `ids`, or the tab under the search and filters of `query`. TagError if not valid."""
    if tab not in TABS:
        raise TagError(_("Unknown tab: choose Clients or Leads."))
    customers = Customer.objects.filter(TABS[tab])
    if ids:
        return customers.filter(pk__in=ids)
    params = QueryDict(query or "")
    unknown = sorted(set(params) - filter_keys())
    if unknown:
        raise TagError(_("Unknown filter: %(names)s.") % {"names": ", ".join(unknown)[:200]})
    filterset = CustomerFilter(params, queryset=customers)
    if not filterset.is_valid():
        raise TagError(
            _("The search and filters are not valid: %(errors)s")
            % {"errors": filterset.errors_text()}
        )
    return filterset.qs


@transaction.atomic
def tag_job_create(
    *, actor, action: str, names: list[str], tab: str, ids: list[int], query: str
) -> TagJob:
    """Record a bulk tag change (checked now, run by tag_job_run)."""
    if action not in TagJobAction.values:
        raise TagError(_("Unknown action: add or remove tags."))
    if not names:
        raise TagError(_("Name at least one tag."))
    bulk_audience(tab=tab, ids=ids, query=query)  # refuses what is not valid, now
    if action == TagJobAction.ADD:
        tags = tags_get_or_create(names=names)
    else:
        tags = list(
            Tag.objects.annotate(key=Lower("name")).filter(key__in=[n.lower() for n in names])
        )
        if not tags:
            raise TagError(_("No tag of these names exists."))
    job = TagJob.objects.create(
        action=action,
        tag_names=[tag.name for tag in tags],
        tab=tab,
        ids=ids,
        query="" if ids else query,
        created_by=actor,
        created_at=timezone.now(),
    )
    job.tags.set(tags)
    return job


def tag_job_run(*, job_id: int) -> TagJob:
    """Run a bulk tag job in chunks of BULK_CHUNK customers by id, each chunk one transaction
    with its audit entries, updating the progress. Safe to run twice: a finished job is left
    alone and a chunk already applied changes nothing again."""
    job = TagJob.objects.filter(pk=job_id).first()
    if job is None or job.finished:
        return job
    tags = list(job.tags.all())
    job.status, job.started_at, job.error = TagJobStatus.RUNNING, timezone.now(), ""
    try:
        audience = bulk_audience(tab=job.tab, ids=job.ids, query=job.query)
    except TagError as exc:
        job.status, job.error, job.finished_at = TagJobStatus.FAILED, str(exc), timezone.now()
        job.save()
        return job
    # The customers are resolved once, when the job starts (one query: evaluating the
    # search and filters again for every chunk cost more than the chunks' writes).
    ids = list(audience.order_by("pk").values_list("pk", flat=True))
    job.total, job.done, job.changed = len(ids), 0, 0
    job.save()
    for start in range(0, len(ids), BULK_CHUNK):
        chunk = ids[start : start + BULK_CHUNK]
        with transaction.atomic():
            changed = _apply_chunk(job, tags, chunk)
            job.done += len(chunk)
            job.changed += changed
            TagJob.objects.filter(pk=job.pk).update(done=job.done, changed=job.changed)
    job.status, job.finished_at = TagJobStatus.DONE, timezone.now()
    job.save(update_fields=["status", "finished_at"])
    return job


def _apply_chunk(job: TagJob, tags: list[Tag], chunk: list[int]) -> int:
    before = _current_tags(chunk)
    for pk in chunk:
        before.setdefault(pk, [])
    tag_ids = {tag.pk for tag in tags}
    if job.action == TagJobAction.ADD:
        CustomerTag.objects.bulk_create(
            [CustomerTag(customer_id=pk, tag=tag) for pk in chunk for tag in tags],
            ignore_conflicts=True,
            batch_size=BULK_CHUNK,
        )
        new = _pairs(tags)
        after = {
            pk: current + [pair for pair in new if pair[0] not in {t[0] for t in current}]
            for pk, current in before.items()
        }
    else:
        CustomerTag.objects.filter(customer_id__in=chunk, tag_id__in=tag_ids).delete()
        after = {pk: [t for t in current if t[0] not in tag_ids] for pk, current in before.items()}
    entries = _audit_rows(actor=job.created_by, before=before, after=after)
    AuditEntry.objects.bulk_create(entries, batch_size=BULK_CHUNK)
    return len(entries)


def job_message(job: TagJob) -> str:
    """What a finished job did, for the user."""
    return ngettext(
        "%(count)s customer's tags changed.", "%(count)s customers' tags changed.", job.changed
    ) % {"count": job.changed}
