"""The access log's page size comes from its table, whatever the query string says: the
hostile-input test found a 500 with a per_page of its choosing (django-tables2 reads it from
the request)."""

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("per_page", ["-1", "0", "1", "-99999999999", "10000000", "x"])
@pytest.mark.parametrize("page_number", ["1", "2", "-1", "999999"])
def test_any_per_page_and_page_answer_the_log_in_pages_of_fifty(
    admin_client, per_page, page_number
):
    response = admin_client.get("/audit/", {"per_page": per_page, "page": page_number})
    assert response.status_code == 200
    assert response.context["table"].paginator.per_page == 50
