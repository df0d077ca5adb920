"""Who may export, what a bad request gets, the list's Export form, the exports page."""

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from exports import services
from exports.models import Export, ExportStatus
from privacy.models import AccessAction, AccessLogEntry
from tests.factories import CustomerFactory, UserFactory, make_order
from tests.test_translations import data_values, shared_words, untranslated

pytestmark = pytest.mark.django_db
URL = "/exports/new/"
VALID = {"tab": "clients", "scope": "all", "file_format": "csv"}


def test_only_users_who_may_read_customers_export(client, db):
    assert client.post(URL, VALID).status_code == 302  # to the login page
    assert "/login/" in client.post(URL, VALID)["Location"]
    nobody = Client()
    nobody.force_login(UserFactory())  # no role
    for url in (URL, "/exports/"):
        response = nobody.post(url, VALID) if url == URL else nobody.get(url)
        assert response.status_code == 403
    assert not Export.objects.exists()


@pytest.mark.parametrize("role", ["Viewer", "Staff", "Admin"])
def test_every_role_may_export(role, db):
    client = Client()
    client.force_login(UserFactory(role=role))
    response = client.post(URL, VALID)
    assert response.status_code == 200
    b"".join(response.streaming_content)
    assert Export.objects.get().status == ExportStatus.DONE


def test_every_export_is_in_the_access_log_and_a_refused_one_is_not(viewer_client, db):
    response = viewer_client.post(URL, VALID)
    b"".join(response.streaming_content)
    export = Export.objects.get()
    entry = AccessLogEntry.objects.get(action=AccessAction.EXPORT)
    assert entry.detail == {"export": export.pk, "tab": export.tab}
    assert entry.user_id == export.requested_by_id
    viewer_client.post(URL, {**VALID, "sort": "password"})
    assert AccessLogEntry.objects.filter(action=AccessAction.EXPORT).count() == 1


def test_an_export_is_a_post(viewer_client):
    assert viewer_client.get(URL + "?tab=clients&scope=all&file_format=csv").status_code == 405
    assert not Export.objects.exists()


@pytest.mark.parametrize(
    "data,message",
    [
        ({"tab": "nowhere"}, "Select a valid choice"),
        ({"scope": "some"}, "Select a valid choice"),
        ({"file_format": "pdf"}, "Select a valid choice"),
        ({"file_format": ""}, "This field is required"),
        ({"scope": "filtered", "query": "spent_min=abc"}, "Enter a number"),
        ({"scope": "filtered", "query": "country=ZZ"}, "No country has the code"),
        ({"scope": "filtered", "query": "spent_min=50&spent_max=10"}, "maximum is below"),
        ({"scope": "filtered", "query": "q=" + "x" * 3000}, "at most 2000 characters"),
        ({"sort": "password"}, "Unknown sort"),
        ({"sort": "--name"}, "Unknown sort"),
        ({"sort": "last_order.pk"}, "Unknown sort"),
        ({"scope": "selected"}, "No customer is selected"),
        ({"scope": "filtered", "query": "q=\x00"}, "Null characters are not allowed"),
        ({"scope": "filtered", "query": "%ff=%fe&zzz=1&q=%"}, None),
    ],
)
def test_bad_requests_get_a_clear_error_and_export_nothing(viewer_client, data, message):
    CustomerFactory()
    response = viewer_client.post(URL, {**VALID, **data})
    if message is None:
        # Garbage that is no filter at all is ignored, as the list ignores it.
        assert response.status_code == 200
        b"".join(response.streaming_content)
        return
    assert response.status_code == 400
    assert "Nothing was exported" in response.text
    assert message in response.text
    assert not Export.objects.exists()


def test_a_selection_of_another_tab_or_outside_the_selection_is_refiltered(admin_client_role, db):
    client = CustomerFactory(push_opt_in=True)
    make_order(client)
    lead = CustomerFactory(push_opt_in=True)
    session = admin_client_role.session
    # A session forged to hold a lead in the Clients selection: the export re-checks the tab.
    session["list_selection"] = {"clients": [client.pk, lead.pk]}
    session.save()
    response = admin_client_role.post(URL, {**VALID, "scope": "selected"})
    text = b"".join(response.streaming_content).decode()
    assert f'"{client.pk}"' in text and f'"{lead.pk}"' not in text
    assert Export.objects.get().rows == 1


def test_the_lists_offer_the_export(viewer_client, admin_client_role, db):
    make_order(CustomerFactory())
    page = viewer_client.get("/clients/?q=a&sort=-total_spent")
    assert 'action="/exports/new/"' in page.text
    assert '<option value="filtered" selected>' in page.text
    assert 'name="sort" value="-total_spent"' in page.text
    assert 'name="query" value="q=a"' in page.text
    # Viewers have no selection; those who may send pushes do.
    assert 'value="selected"' not in page.text
    assert 'value="selected"' in admin_client_role.get("/clients/leads/").text
    assert 'value="filtered"' not in viewer_client.get("/clients/leads/").text


def test_exports_page_lists_the_users_own_in_constant_queries(viewer_client, db):
    owner = UserFactory(role="Viewer")
    other = UserFactory(role="Viewer")
    viewer_client.force_login(owner)

    def add(user, n):
        for _ in range(n):
            services.export_create(
                user=user, tab="clients", scope="all", query="", sort="", ids=[],
                file_format="csv", language="en",
            )  # fmt: skip

    def queries():
        with CaptureQueriesContext(connection) as ctx:
            response = viewer_client.get("/exports/")
        assert response.status_code == 200
        return len(ctx), response

    add(owner, 2)
    add(other, 1)
    few, _ = queries()
    add(owner, 10)
    many, response = queries()
    assert many == few
    assert len(response.context["page"].object_list) == 12


def test_export_pages_are_translated(db, django_capture_on_commit_callbacks):
    user = UserFactory(role="Viewer")
    client = Client()
    client.force_login(user)
    make_order(CustomerFactory())
    with django_capture_on_commit_callbacks(execute=True):
        client.post(URL, {**VALID, "file_format": "xlsx"})
    pending = services.export_create(
        user=user, tab="leads", scope="all", query="", sort="", ids=[],
        file_format="xlsx", language="en",
    )  # fmt: skip
    done = Export.objects.exclude(pk=pending.pk).get()
    data, shared = data_values(), shared_words()
    pages = [
        ("get", "/exports/", {}),
        ("get", done.get_absolute_url(), {}),
        ("get", pending.get_absolute_url(), {}),
        ("post", URL, {**VALID, "scope": "filtered", "query": "spent_min=x"}),
    ]
    for method, url, data_ in pages:
        french = getattr(client, method)(url, data_, headers={"accept-language": "fr"})
        english = getattr(client, method)(url, data_, headers={"accept-language": "en"})
        assert french.status_code == english.status_code, url
        assert untranslated(french.text, english.text, data, shared) == [], url
