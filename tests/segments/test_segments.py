"""Saved segments: saved from a tab's search and filters, listed in its side panel with a
live count, reopened as a normal URL, renamed, deleted, sent a push; permissions and forged
definitions."""

from urllib.parse import urlencode

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from segments import services
from segments.models import Segment
from segments.selectors import COUNT_TTL, segment_counts
from tests.factories import CustomerFactory, make_order

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_counts():
    cache.clear()
    yield
    cache.clear()


def _clients(n, **kwargs):
    customers = [CustomerFactory() for _ in range(n)]
    for customer in customers:
        make_order(customer, **kwargs)
    return customers


def _save(client, name, query, tab="clients"):
    return client.post(
        reverse("segments:segment-create"), {"name": name, "tab": tab, "query": query}
    )


def test_staff_save_a_segment_and_it_reopens_as_the_list_url(staff_client):
    _clients(2, source="google")
    _clients(1, source="bing")
    response = _save(staff_client, "Googlers", "source=google&spent_min=10")
    segment = Segment.objects.get()
    assert response.status_code == 302
    assert response.url == "/clients/?source=google&spent_min=10"
    assert segment.get_absolute_url() == response.url
    detail = staff_client.get(reverse("segments:segment-detail", args=[segment.pk]))
    assert detail.url == segment.get_absolute_url()
    page = staff_client.get(segment.get_absolute_url())
    assert "Googlers" in page.text and 'aria-current="true"' in page.text


def test_the_count_is_live_not_a_frozen_list(viewer_client):
    _clients(2, source="google")
    segment = services.segment_create(actor=None, name="G", tab="clients", query="source=google")
    assert segment_counts([segment]) == {segment.pk: (2, 10_000)}
    _clients(1, source="google")
    cache.clear()
    assert segment_counts([segment]) == {segment.pk: (3, 10_000)}
    page = viewer_client.get("/clients/")
    assert ">3<" in page.text.replace(" ", "")


def test_a_count_read_from_the_cache_is_still_made_again_after_its_ttl(monkeypatch):
    """Reading a cached count does not restart its time to live: a list viewed more often
    than once a minute still counts again every COUNT_TTL seconds."""
    now = [1_000_000.0]
    clock = type("Clock", (), {"time": staticmethod(lambda: now[0])})
    monkeypatch.setattr("django.core.cache.backends.base.time", clock)
    monkeypatch.setattr("django.core.cache.backends.locmem.time", clock)
    cache.clear()
    _clients(2, source="google")
    segment = services.segment_create(actor=None, name="G", tab="clients", query="source=google")
    assert segment_counts([segment]) == {segment.pk: (2, 10_000)}
    _clients(1, source="google")
    for _ in range(3):
        now[0] += COUNT_TTL / 2
        assert segment_counts([segment])[segment.pk][0] in (2, 3)
    # Counted at the start, read since: made again once COUNT_TTL has passed since counting.
    assert segment_counts([segment]) == {segment.pk: (3, 10_000)}


def test_viewers_use_segments_but_cannot_change_them(viewer_client):
    segment = services.segment_create(actor=None, name="G", tab="clients", query="source=google")
    assert viewer_client.get(segment.get_absolute_url()).status_code == 200
    refused = [
        _save(viewer_client, "Mine", "source=bing"),
        viewer_client.post(reverse("segments:segment-rename", args=[segment.pk]), {"name": "x"}),
        viewer_client.post(reverse("segments:segment-delete", args=[segment.pk])),
    ]
    assert [r.status_code for r in refused] == [403, 403, 403]
    assert list(Segment.objects.values_list("name", flat=True)) == ["G"]
    page = viewer_client.get("/clients/?source=bing")
    assert "segment-save" not in page.text and "Rename or delete" not in page.text


def test_rename_and_delete(staff_client):
    first = services.segment_create(actor=None, name="A", tab="clients", query="source=a")
    services.segment_create(actor=None, name="B", tab="clients", query="source=b")
    response = staff_client.post(
        reverse("segments:segment-rename", args=[first.pk]), {"name": "b"}, follow=True
    )
    assert "exists already" in response.text
    staff_client.post(reverse("segments:segment-rename", args=[first.pk]), {"name": "Alpha"})
    assert Segment.objects.get(pk=first.pk).name == "Alpha"
    response = staff_client.post(reverse("segments:segment-delete", args=[first.pk]))
    assert response.url == "/clients/"
    assert list(Segment.objects.values_list("name", flat=True)) == ["B"]
    # The same name is free on the other tab.
    services.segment_create(actor=None, name="b", tab="leads", query="source=b")


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("", "Search or filter the list first"),
        ("sort=name&page=2", "Unknown filter"),
        ("source=google&is_superuser=1", "Unknown filter"),
        ("spent_min=abc", "not valid"),
        ("tags_any=999999", "not valid"),
        ("recent_orders_min=2", "not valid"),
        ("q=" + "x" * 3000, "too long"),
        ("country=ZZ", "not valid"),
    ],
)
def test_forged_definitions_are_refused_with_a_message(staff_client, query, message):
    response = _save(staff_client, "Forged", query)
    assert response.status_code == 302
    page = staff_client.get(response.url)
    assert page.status_code == 200
    assert message in page.text
    assert not Segment.objects.exists()


@pytest.mark.parametrize("name", ["", "   ", "x" * 101, "bad\x00name"])
def test_bad_names_are_refused(staff_client, name):
    response = _save(staff_client, name, "source=google")
    assert response.status_code == 302
    assert not Segment.objects.exists()


def test_unknown_tab_and_methods(staff_client):
    assert _save(staff_client, "X", "source=a", tab="orders").status_code == 302
    assert not Segment.objects.exists()
    assert staff_client.get(reverse("segments:segment-create")).status_code == 405
    assert staff_client.get(reverse("segments:segment-detail", args=[999])).status_code == 404


def test_a_push_to_a_segment_shows_the_count_before_confirming(admin_client_role):
    google = _clients(3, source="google")
    type(google[0]).objects.filter(pk__in=[c.pk for c in google[:2]]).update(push_opt_in=True)
    segment = services.segment_create(actor=None, name="G", tab="clients", query="source=google")
    page = admin_client_role.get("/clients/")
    push_url = (
        reverse("notifications:campaign-create")
        + "?"
        + urlencode({"tab": "clients", "audience": "filtered", "query": segment.query})
    )
    assert push_url.replace("&", "&amp;") in page.text
    compose = admin_client_role.get(push_url)
    assert compose.status_code == 200
    assert compose.context["counts"]["customers"] == 2


def test_a_definition_made_invalid_later_shows_as_invalid_not_a_500(viewer_client):
    from tags.services import customer_set_tags

    customer = _clients(1)[0]
    tag = customer_set_tags(customer=customer, actor=None, names=["VIP"])[0]
    segment = services.segment_create(
        actor=None, name="VIP", tab="clients", query=f"tags_any={tag.pk}"
    )
    Segment.objects.filter(pk=segment.pk).update(query="tags_any=424242")
    page = viewer_client.get("/clients/")
    assert page.status_code == 200 and "invalid" in page.text


def test_list_query_count_does_not_grow_with_segments(viewer_client):
    _clients(2, source="google")
    services.segment_create(actor=None, name="S0", tab="clients", query="source=google")
    viewer_client.get("/clients/")
    with CaptureQueriesContext(connection) as one:
        viewer_client.get("/clients/")
    for n in range(1, 8):
        services.segment_create(actor=None, name=f"S{n}", tab="clients", query=f"orders_min={n}")
    viewer_client.get("/clients/")  # counts the new segments, in one query
    with CaptureQueriesContext(connection) as many:
        viewer_client.get("/clients/")
    assert len(one.captured_queries) == len(many.captured_queries)
    cache.clear()
    with CaptureQueriesContext(connection) as uncached:
        viewer_client.get("/clients/")
    assert len(uncached.captured_queries) == len(many.captured_queries) + 1
