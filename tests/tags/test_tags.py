"""Tags: the library (rename, merge, delete), a customer's tags on the client page, bulk
tagging from the lists (inline and in the background), permissions and hostile input."""

import pytest
from django.db import connection
from django.test import TestCase
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from clients.models import AuditAction, AuditEntry
from clients.selection import SESSION_KEY
from segments.models import Segment
from tags import services
from tags.models import CustomerTag, Tag, TagJob, TagJobStatus
from tests.factories import CustomerFactory, make_order

pytestmark = pytest.mark.django_db


def names_of(customer) -> list[str]:
    return sorted(
        Tag.objects.filter(
            pk__in=CustomerTag.objects.filter(customer=customer).values("tag_id")
        ).values_list("name", flat=True)
    )


def test_tag_names_are_cleaned_and_case_insensitive():
    customer = CustomerFactory()
    services.customer_set_tags(customer=customer, actor=None, names=["VIP", "  big   buyer "])
    other = CustomerFactory()
    services.customer_set_tags(customer=other, actor=None, names=["vip"])
    assert Tag.objects.count() == 2
    assert names_of(other) == ["VIP"]
    assert services.parse_tag_names("vip, VIP , Summer,,") == ["vip", "Summer"]


@pytest.mark.parametrize(
    "text",
    ["x" * 51, "bad\x00name", "tab\tname\x07", ",".join(f"t{n}" for n in range(21)), "a" * 5000],
)
def test_invalid_tag_names_are_refused_with_a_message(text):
    with pytest.raises(services.TagError):
        services.parse_tag_names(text)


def test_staff_edit_a_customers_tags_from_the_client_page_audited(staff_client):
    customer = CustomerFactory()
    url = reverse("tags:customer-tags-update", args=[customer.pk])
    response = staff_client.post(url, {"tags": "VIP, Wholesale"}, follow=True)
    assert response.status_code == 200
    assert names_of(customer) == ["VIP", "Wholesale"]
    assert "Wholesale" in response.text
    staff_client.post(url, {"tags": "wholesale"})
    assert names_of(customer) == ["Wholesale"]
    entries = AuditEntry.objects.filter(customer=customer, action=AuditAction.TAGS_CHANGE)
    assert [e.changes["tags"] for e in entries.order_by("pk")] == [
        ["", "VIP, Wholesale"],
        ["VIP, Wholesale", "Wholesale"],
    ]
    # Saving the same tags again changes nothing and writes no entry.
    staff_client.post(url, {"tags": "Wholesale"})
    assert entries.count() == 2


def test_a_huge_tag_name_is_a_message_not_a_500(staff_client):
    customer = CustomerFactory()
    url = reverse("tags:customer-tags-update", args=[customer.pk])
    response = staff_client.post(url, {"tags": "x" * 100_000}, follow=True)
    assert response.status_code == 200
    assert "Too many tags" in response.text or "at most" in response.text
    assert not Tag.objects.exists()


def test_viewers_see_tags_but_cannot_change_them(viewer_client):
    customer = CustomerFactory()
    services.customer_set_tags(customer=customer, actor=None, names=["VIP"])
    page = viewer_client.get(customer.get_absolute_url())
    assert "VIP" in page.text and 'name="tags"' not in page.text
    tag = Tag.objects.get()
    refused = [
        viewer_client.post(reverse("tags:customer-tags-update", args=[customer.pk]), {"tags": "x"}),
        viewer_client.post(reverse("tags:tag-rename", args=[tag.pk]), {"name": "y"}),
        viewer_client.post(reverse("tags:tag-delete", args=[tag.pk])),
        viewer_client.post(reverse("tags:tag-merge", args=[tag.pk]), {"into": tag.pk}),
        viewer_client.post(reverse("tags:bulk-tag"), {"tab": "clients", "target": "matching"}),
    ]
    assert [r.status_code for r in refused] == [403] * 5
    assert names_of(customer) == ["VIP"]
    assert viewer_client.get(reverse("tags:tag-list")).status_code == 200


def test_library_counts_rename_and_merge(staff_client):
    a, b, c = CustomerFactory(), CustomerFactory(), CustomerFactory()
    services.customer_set_tags(customer=a, actor=None, names=["VIP", "Gold"])
    services.customer_set_tags(customer=b, actor=None, names=["Gold"])
    services.customer_set_tags(customer=c, actor=None, names=["VIP"])
    vip, gold = Tag.objects.get(name="VIP"), Tag.objects.get(name="Gold")
    segment = Segment.objects.create(
        name="Gold ones",
        tab="clients",
        query=f"tags_any={gold.pk}",
        created_at=a.created_at,
        updated_at=a.created_at,
    )
    page = staff_client.get(reverse("tags:tag-list"))
    assert page.status_code == 200
    # A rename onto an existing name (another case) is refused: merge instead.
    response = staff_client.post(
        reverse("tags:tag-rename", args=[gold.pk]), {"name": "vip"}, follow=True
    )
    assert "merge the two instead" in response.text
    staff_client.post(reverse("tags:tag-rename", args=[gold.pk]), {"name": "Gold club"})
    assert Tag.objects.get(pk=gold.pk).name == "Gold club"
    staff_client.post(reverse("tags:tag-merge", args=[gold.pk]), {"into": vip.pk})
    assert not Tag.objects.filter(pk=gold.pk).exists()
    assert names_of(a) == names_of(b) == names_of(c) == ["VIP"]
    # b changed (Gold club -> VIP), a lost Gold club; c did not change.
    assert AuditEntry.objects.filter(action=AuditAction.TAGS_CHANGE, customer=c).count() == 1
    merged = AuditEntry.objects.filter(action=AuditAction.TAGS_CHANGE, customer=b).latest("pk")
    assert merged.changes["tags"] == ["Gold club", "VIP"]
    # The segment naming the merged tag names the tag it was merged into.
    segment.refresh_from_db()
    assert segment.query == f"tags_any={vip.pk}"


@pytest.mark.parametrize("into", ["", "abc", "99999999999999999999999", "-3"])
def test_merge_into_nothing_is_refused(staff_client, into):
    tag = services.tags_get_or_create(names=["VIP"])[0]
    response = staff_client.post(
        reverse("tags:tag-merge", args=[tag.pk]), {"into": into}, follow=True
    )
    assert response.status_code == 200
    assert Tag.objects.filter(pk=tag.pk).exists()


def test_delete_takes_the_tag_off_its_customers(staff_client):
    customer = CustomerFactory()
    services.customer_set_tags(customer=customer, actor=None, names=["VIP", "Gold"])
    tag = Tag.objects.get(name="VIP")
    staff_client.post(reverse("tags:tag-delete", args=[tag.pk]))
    assert names_of(customer) == ["Gold"]
    entry = AuditEntry.objects.filter(action=AuditAction.TAGS_CHANGE).latest("pk")
    assert entry.changes["tags"] == ["Gold, VIP", "Gold"]


def _clients(count, **kwargs):
    customers = [CustomerFactory(**kwargs) for _ in range(count)]
    for customer in customers:
        make_order(customer)
    return customers


def test_bulk_add_to_every_matching_customer_is_refiltered_on_the_server(staff_client):
    google = _clients(3)
    for customer in google:
        make_order(customer, source="google")
    others = _clients(2)
    for customer in others:
        make_order(customer, source="bing")
    response = staff_client.post(
        reverse("tags:bulk-tag"),
        {
            "tab": "clients",
            "target": "matching",
            "query": "source=google",
            "tags": "Googlers",
            "action": "add",
            "next": "/clients/?source=google",
        },
    )
    assert response.status_code == 302 and response.url == "/clients/?source=google"
    assert {c.pk for c in google} == set(CustomerTag.objects.values_list("customer_id", flat=True))
    assert AuditEntry.objects.filter(action=AuditAction.TAGS_CHANGE).count() == 3
    job = TagJob.objects.get()
    assert (job.status, job.total, job.done, job.changed) == (TagJobStatus.DONE, 3, 3, 3)
    # Remove, on the same filter.
    staff_client.post(
        reverse("tags:bulk-tag"),
        {
            "tab": "clients",
            "target": "matching",
            "query": "source=google",
            "tags": "googlers",
            "action": "remove",
        },
    )
    assert not CustomerTag.objects.exists()


def test_bulk_on_the_selection_uses_the_session_not_posted_ids(admin_client_role):
    chosen, other = _clients(1, push_opt_in=True)[0], _clients(1)[0]
    session = admin_client_role.session
    session[SESSION_KEY] = {"clients": [chosen.pk]}
    session.save()
    admin_client_role.post(
        reverse("tags:bulk-tag"),
        {
            "tab": "clients",
            "target": "selected",
            "ids": [other.pk],
            "tags": "Picked",
            "action": "add",
        },
    )
    assert names_of(chosen) == ["Picked"] and names_of(other) == []


@pytest.mark.parametrize(
    "data",
    [
        {"tab": "nowhere", "target": "matching", "tags": "x", "action": "add"},
        {"tab": "clients", "target": "everyone", "tags": "x", "action": "add"},
        {"tab": "clients", "target": "matching", "tags": "x", "action": "explode"},
        {"tab": "clients", "target": "matching", "tags": "", "action": "add"},
        {"tab": "clients", "target": "matching", "tags": "x", "action": "add", "query": "evil=1"},
        {
            "tab": "clients",
            "target": "matching",
            "tags": "x",
            "action": "add",
            "query": "spent_min=abc",
        },
        {"tab": "clients", "target": "matching", "tags": "y" * 60, "action": "add"},
        {"tab": "clients", "target": "matching", "tags": "nope", "action": "remove"},
        {"tab": "clients", "target": "selected", "tags": "x", "action": "add"},
    ],
)
def test_forged_bulk_posts_change_nothing(staff_client, data):
    _clients(2)
    response = staff_client.post(reverse("tags:bulk-tag"), data, follow=True)
    assert response.status_code == 200
    assert not CustomerTag.objects.exists() and not TagJob.objects.exists()
    assert not AuditEntry.objects.filter(action=AuditAction.TAGS_CHANGE).exists()


def test_large_bulk_changes_run_in_the_background_with_progress(staff_client, monkeypatch):
    monkeypatch.setattr(services, "BULK_INLINE_LIMIT", 2)
    monkeypatch.setattr(services, "BULK_CHUNK", 2)
    customers = _clients(5)
    with TestCase.captureOnCommitCallbacks(execute=False) as callbacks:
        response = staff_client.post(
            reverse("tags:bulk-tag"),
            {"tab": "clients", "target": "matching", "query": "", "tags": "All", "action": "add"},
        )
    job = TagJob.objects.get()
    assert response.status_code == 302 and response.url == job.get_absolute_url()
    # Enqueued once committed; until a worker takes it, nothing changed.
    assert len(callbacks) == 1
    assert job.status == TagJobStatus.QUEUED and not CustomerTag.objects.exists()
    page = staff_client.get(job.get_absolute_url())
    assert 'http-equiv="refresh"' in page.text
    # The task (the test settings run it at once): in chunks, progress saved.
    callbacks[0]()
    job.refresh_from_db()
    assert (job.status, job.done, job.total, job.changed) == (TagJobStatus.DONE, 5, 5, 5)
    assert CustomerTag.objects.count() == len(customers)
    # Safe to run twice.
    services.tag_job_run(job_id=job.pk)
    assert AuditEntry.objects.filter(action=AuditAction.TAGS_CHANGE).count() == 5
    page = staff_client.get(job.get_absolute_url())
    assert 'http-equiv="refresh"' not in page.text and 'value="100"' in page.text


def test_tag_library_query_count_does_not_grow(viewer_client):
    for n in range(3):
        services.customer_set_tags(customer=CustomerFactory(), actor=None, names=[f"t{n}"])
    url = reverse("tags:tag-list")
    viewer_client.get(url)
    with CaptureQueriesContext(connection) as few:
        viewer_client.get(url)
    for n in range(20):
        services.customer_set_tags(customer=CustomerFactory(), actor=None, names=[f"t{n}", "x"])
    with CaptureQueriesContext(connection) as many:
        viewer_client.get(url)
    assert len(few.captured_queries) == len(many.captured_queries)


def test_client_page_query_count_does_not_grow_with_tags(viewer_client):
    customer = CustomerFactory()
    services.customer_set_tags(customer=customer, actor=None, names=["a"])
    viewer_client.get(customer.get_absolute_url())
    with CaptureQueriesContext(connection) as few:
        viewer_client.get(customer.get_absolute_url())
    services.customer_set_tags(customer=customer, actor=None, names=[f"t{n}" for n in range(15)])
    with CaptureQueriesContext(connection) as many:
        viewer_client.get(customer.get_absolute_url())
    assert len(few.captured_queries) == len(many.captured_queries)


def test_merge_and_delete_sit_behind_a_second_click_that_says_what_they_do(staff_client):
    """A tag on thousands of customers is one click from gone: the library's Merge and Delete
    buttons open only from a "Merge…" / "Delete…" summary that says how many customers it
    changes and that it cannot be undone."""
    from html.parser import HTMLParser

    for customer in CustomerFactory.create_batch(3):
        services.customer_set_tags(customer=customer, actor=None, names=["VIP"])
    services.customer_set_tags(customer=CustomerFactory(), actor=None, names=["Other"])
    vip, other = Tag.objects.get(name="VIP"), Tag.objects.get(name="Other")

    class Forms(HTMLParser):
        def __init__(self):
            super().__init__()
            self.details, self.text, self.found = 0, [], {}

        def handle_starttag(self, tag, attrs):
            if tag == "details":
                self.details += 1
                self.text = []
            action = dict(attrs).get("action", "")
            if tag == "form" and ("/merge/" in action or "/delete/" in action):
                self.found[action] = self.details

        def handle_endtag(self, tag):
            if tag == "details":
                self.found.setdefault("texts", []).append(" ".join(self.text))
                self.details -= 1

        def handle_data(self, data):
            self.text.append(data.strip())

    parser = Forms()
    parser.feed(staff_client.get(reverse("tags:tag-list")).content.decode())
    texts = parser.found.pop("texts")
    for pk in (vip.pk, other.pk):
        for name in ("tags:tag-merge", "tags:tag-delete"):
            assert parser.found[reverse(name, args=[pk])] == 1  # inside a <details>
    assert any("Removes “VIP” from its 3 customers" in t and "cannot be undone" in t for t in texts)
    assert any("Its 3 customers and the saved segments" in t for t in texts)
