import http.client
import json
import socket
from urllib.parse import urlsplit

import pytest
from django.test import Client

from storefront import auth
from storefront.models import Scope
from storefront.services import api_key_create

ALL_SCOPES = list(Scope.values)


class Api:
    """The API as a shop's platform calls it: JSON bodies, a bearer key."""

    def __init__(self, key: str | None):
        self.key = key
        self.client = Client()

    def headers(self, extra: dict | None) -> dict:
        headers = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        headers.update(extra or {})
        return headers

    def call(
        self,
        method: str,
        path: str,
        body=None,
        *,
        headers=None,
        raw: bytes | None = None,
        content_type="application/json",
    ):
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        kwargs = {"headers": self.headers(headers)}
        if data is not None:
            kwargs.update(data=data, content_type=content_type)
        return getattr(self.client, method)(f"/api/v1{path}", **kwargs)

    def get(self, path, **kw):
        return self.call("get", path, **kw)

    def post(self, path, body=None, **kw):
        return self.call("post", path, body, **kw)

    def patch(self, path, body=None, **kw):
        return self.call("patch", path, body, **kw)

    def delete(self, path, **kw):
        return self.call("delete", path, **kw)


def make_key(scopes=None, name="Shop platform") -> str:
    _, key = api_key_create(name=name, scopes=scopes or ALL_SCOPES, actor=None)
    return key


@pytest.fixture(autouse=True)
def _fresh_key_cache():
    """Each test starts with this process's API key cache empty (its keys' rows were rolled
    back with the previous test)."""
    auth._keys.clear()
    yield
    auth._keys.clear()


@pytest.fixture
def api(db):
    return Api(make_key())


@pytest.fixture
def api_as():
    def build(*scopes):
        return Api(make_key(list(scopes)))

    return build


def assert_problem(response, status: int, slug: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/problem+json"), response.content
    document = response.json()
    assert document["type"] == f"/api/v1/problems/{slug}", document
    assert document["status"] == status
    assert document["title"]
    return document


class RawConnection:
    """A connection to the live server for requests an HTTP client will not send as they are:
    a body cut short or sent slowly, chunked by hand, `Content-Length: 00`."""

    def __init__(self, live_server):
        url = urlsplit(live_server.url)
        self._host = url.netloc
        self._sock = socket.create_connection((url.hostname, url.port), timeout=30)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._sock.close()

    def head(self, path: str, headers: dict) -> bytes:
        """A POST's request line and headers."""
        lines = [
            f"POST /api/v1{path} HTTP/1.1",
            f"Host: {self._host}",
            *(f"{name}: {value}" for name, value in headers.items()),
            "Connection: close",
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    def send(self, data: bytes, *, hang_up: bool = False) -> None:
        """Send `data` in one write; `hang_up`: then close the sending side (EOF)."""
        self._sock.sendall(data)
        if hang_up:
            self._sock.shutdown(socket.SHUT_WR)

    def response(self) -> tuple[http.client.HTTPResponse, bytes]:
        response = http.client.HTTPResponse(self._sock)
        response.begin()
        return response, response.read()
