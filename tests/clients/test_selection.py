"""The push selection of the Clients and Leads tabs, kept in the session (clients/selection.py)."""

import re

import pytest

from clients.selectors import MAX_SELECTED
from tests.factories import CustomerFactory, make_order

pytestmark = pytest.mark.django_db

URL = "/clients/selection/"
JSON = {"accept": "application/json"}
CHECKED = re.compile(
    r'<input type="checkbox" name="ids" value="(\d+)"[^>]*class="row-select" checked>'
)


@pytest.fixture
def people():
    """Clients who accept push (enough for two pages of 25), one who does not, a lead."""
    clients = []
    for n in range(30):
        customer = CustomerFactory(push_opt_in=True, email=f"push{n}@example.com")
        make_order(customer)
        clients.append(customer.pk)
    silent = CustomerFactory(push_opt_in=False)
    make_order(silent)
    lead = CustomerFactory(push_opt_in=True)
    return {"clients": clients, "silent": silent.pk, "lead": lead.pk}


def post(client, **data):
    return client.post(URL, data, headers=JSON)


def test_ticks_are_kept_per_tab_and_refiltered(admin_client_role, people):
    a, b = people["clients"][:2]
    response = post(
        admin_client_role, tab="clients", action="add", ids=[a, b, people["silent"], people["lead"]]
    )
    assert response.status_code == 200
    # Only the tab's customers who accept push are taken.
    assert response.json() == {
        "tab": "clients",
        "ids": [a, b],
        "count": 2,
        "max": MAX_SELECTED,
        "message": "",
    }
    assert post(admin_client_role, tab="leads", action="add", ids=[people["lead"]]).json()[
        "ids"
    ] == [people["lead"]]
    assert post(admin_client_role, tab="clients", action="remove", ids=[a]).json()["ids"] == [b]
    state = admin_client_role.get(URL, {"tab": "clients"}).json()
    assert state["ids"] == [b] and state["count"] == 1
    assert post(admin_client_role, tab="clients", action="clear").json()["ids"] == []
    assert admin_client_role.get(URL, {"tab": "leads"}).json()["ids"] == [people["lead"]]


def test_the_selection_survives_changing_page_and_sort(admin_client_role, people):
    first, last = people["clients"][0], people["clients"][-1]
    post(admin_client_role, tab="clients", action="add", ids=[first, last])
    seen = set()
    for params in ({"sort": "id"}, {"sort": "id", "page": 2}, {"sort": "-id"}, {"q": "push"}):
        html = admin_client_role.get("/clients/", params).content.decode()
        seen |= {int(pk) for pk in CHECKED.findall(html)}
        # The count is the whole selection's, whatever the page shows.
        assert re.search(r"data-selected-count>2<", html), params
        assert "Selected: <strong data-selected-count>2</strong> (at most 500)" in html
    assert seen == {first, last}
    # The other tab has its own (empty) selection.
    html = admin_client_role.get("/clients/leads/").content.decode()
    assert CHECKED.findall(html) == [] and "data-selected-count>0<" in html


def test_the_selection_is_capped(admin_client_role, people, monkeypatch):
    monkeypatch.setattr("clients.selection.MAX_SELECTED", 3)
    ids = people["clients"][:5]
    data = post(admin_client_role, tab="clients", action="add", ids=ids).json()
    assert data["ids"] == ids[:3]
    assert data["message"] == "At most 3 customers can be selected."
    data = post(admin_client_role, tab="clients", action="add", ids=ids[3:]).json()
    assert data["ids"] == ids[:3] and data["message"]


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"tab": "nowhere", "action": "add", "ids": ["1"]}, "Unknown tab"),
        ({"tab": "clients", "action": "explode", "ids": ["1"]}, "Unknown action"),
        ({"tab": "clients", "action": "add", "ids": ["1x"]}, "not valid"),
        ({"tab": "clients", "action": "add", "ids": ["0"]}, "not valid"),
        ({"tab": "clients", "action": "add", "ids": ["99999999999999999999"]}, "not valid"),
        ({"tab": "clients", "action": "add", "ids": ["١٢"]}, "not valid"),  # Arabic digits
    ],
)
def test_bad_input_is_refused_and_changes_nothing(admin_client_role, people, data, error):
    post(admin_client_role, tab="clients", action="add", ids=[people["clients"][0]])
    response = admin_client_role.post(URL, data, headers=JSON)
    assert response.status_code == 400 and error in response.json()["error"]
    assert admin_client_role.get(URL, {"tab": "clients"}).json()["ids"] == [people["clients"][0]]


def test_without_javascript_the_forms_post_and_come_back(admin_client_role, people):
    post(admin_client_role, tab="clients", action="add", ids=people["clients"][:2])
    back = "/clients/?sort=id&page=2"
    response = admin_client_role.post(URL, {"tab": "clients", "action": "clear", "next": back})
    assert response.status_code == 302 and response["Location"] == back
    assert admin_client_role.get(URL, {"tab": "clients"}).json()["ids"] == []
    # Elsewhere than this site: back to the tab instead.
    for outside in ("https://evil.example/", "//evil.example/", "javascript:alert(1)"):
        response = admin_client_role.post(URL, {"tab": "leads", "action": "clear", "next": outside})
        assert response["Location"] == "/clients/leads/"
    response = admin_client_role.post(URL, {"tab": "leads", "action": "nope"})
    assert response.status_code == 302 and response["Location"] == "/clients/leads/"
    page = admin_client_role.get("/clients/leads/").content.decode()
    assert "Unknown action" in page


def test_only_users_who_may_send_pushes_have_a_selection(viewer_client, staff_client, people):
    for client in (viewer_client, staff_client):
        assert (
            post(client, tab="clients", action="add", ids=[people["clients"][0]]).status_code == 403
        )
        assert client.get(URL, {"tab": "clients"}).status_code == 403
        html = client.get("/clients/").content.decode()
        assert "row-select" not in html and "select-page" not in html


def test_the_push_checkboxes_are_the_last_column(admin_client_role, people):
    html = admin_client_role.get("/clients/").content.decode()
    header = re.search(r"<thead>(.*?)</thead>", html, re.S).group(1)
    assert re.search(r'class="select-page"[^>]*>.*</th>\s*</tr>\s*$', header, re.S)
    for row in re.findall(r"<tr>(.*?)</tr>", html.split("<tbody>")[1], re.S):
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        assert "row-select" in cells[-1] or cells[-1] == ""
        assert all("row-select" not in cell for cell in cells[:-1])


def test_compose_page_gets_the_ticks_of_every_page(admin_client_role, people):
    kept = people["clients"][:2]
    post(admin_client_role, tab="clients", action="add", ids=kept)
    on_page = people["clients"][5]
    response = admin_client_role.get(
        "/push/new/",
        {
            "tab": "clients",
            "audience": "selected",
            "query": "",
            "selection": "session",
            "ids": [on_page],
        },
    )
    assert response.status_code == 200
    assert response.context["audience"].ids == tuple(sorted([*kept, on_page]))
    assert response.context["counts"]["customers"] == 3
    # The whole tab is the whole tab: the ticks are not added to it.
    response = admin_client_role.get(
        "/push/new/", {"tab": "clients", "audience": "all", "selection": "session"}
    )
    assert response.context["audience"].ids == ()
