"""The console log of refused requests: one line each, no traceback (backoffice/log_filters.py)."""

import io
import logging

import pytest
from django.test import Client

from backoffice.log_filters import RefusedRequestsOnOneLine


@pytest.fixture
def console():
    """What the console handler of settings.LOGGING writes, as text."""
    (handler,) = [
        h
        for h in logging.getLogger().handlers
        if any(isinstance(f, RefusedRequestsOnOneLine) for f in h.filters)
    ]
    stream = io.StringIO()
    previous = handler.setStream(stream)
    try:
        yield stream
    finally:
        handler.setStream(previous)


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/v1/customers", "/clients/"])
def test_a_host_not_allowed_is_logged_on_one_line(console, path):
    response = Client(HTTP_HOST="evil.example").get(path)
    assert response.status_code == 400
    written = console.getvalue()
    assert "Invalid HTTP_HOST header: 'evil.example'" in written
    assert "Traceback" not in written


def test_other_errors_keep_their_traceback(console):
    try:
        raise ValueError("ours")
    except ValueError:
        logging.getLogger("orders.services").exception("Something of ours failed")
    assert "Traceback" in console.getvalue()
