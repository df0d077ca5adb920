"""Marks shared by test modules."""

import os

import pytest
from django.conf import settings


def fault_test(*, needs_postgresql: str, why_opt_in: str) -> list:
    """The marks of a fault test: PostgreSQL only, run only with RUN_FAULT_TESTS=1 (CI sets it
    for its PostgreSQL run), each test in a real transaction its other processes can see."""
    return [
        pytest.mark.skipif(
            not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"),
            reason=needs_postgresql,
        ),
        pytest.mark.skipif(
            os.environ.get("RUN_FAULT_TESTS") != "1",
            reason=f"{why_opt_in}: set RUN_FAULT_TESTS=1",
        ),
        pytest.mark.django_db(transaction=True, serialized_rollback=True),
    ]
