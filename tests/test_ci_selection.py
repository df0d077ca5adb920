"""The tests CI groups or selects by name (tests/conftest.py) still exist: a renamed or moved
test file would otherwise leave its group (and run beside the others) or drop out of the
stock-Django run, silently."""

import importlib
from pathlib import Path

import pytest

from tests.conftest import DEVIATION_TESTS, XDIST_GROUPS

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("node", [*XDIST_GROUPS, *DEVIATION_TESTS])
def test_every_named_test_exists(node):
    path, _, prefix = node.partition("::")
    assert (ROOT / path).is_file(), path
    if prefix:
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        assert any(name.startswith(prefix) for name in vars(module)), node


def test_the_postgresql_restart_test_is_marked_serial():
    module = importlib.import_module("tests.test_faults")
    assert any(mark.name == "serial" for mark in module.pytestmark)
