import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("url", ["/login/", "/django-admin/login/"])
def test_an_overlong_username_is_refused_without_a_server_error(client, url):
    response = client.post(url, {"username": "a" * 1000, "password": "wrong"})
    assert response.status_code == 200
    assert "password" in response.content.decode().lower()
