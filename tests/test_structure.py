"""Where code lives: the product apps never import the demo or benchmark apps, so a production
deployment can leave those out (DEV_APPS=0)."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

PRODUCT_APPS = (
    "backoffice",
    "clients",
    "orders",
    "notifications",
    "storefront",
    "exports",
    "imports",
    "privacy",
    "lifecycle",
    "tags",
    "segments",
)
DEV_APPS = ("demo", "bench")


def imported_modules(path: Path) -> set[str]:
    """Every module a Python file imports, at any depth (imports inside functions too)."""
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module)
            modules.update(f"{node.module}.{alias.name}" for alias in node.names)
    return modules


def product_files():
    base = Path(settings.BASE_DIR)
    return sorted(path for app in PRODUCT_APPS for path in (base / app).rglob("*.py"))


@pytest.mark.parametrize(
    "path", product_files(), ids=lambda p: str(p.relative_to(settings.BASE_DIR))
)
def test_product_code_does_not_import_the_demo_or_benchmark_apps(path):
    forbidden = {module for module in imported_modules(path) if module.split(".")[0] in DEV_APPS}
    assert not forbidden, f"{path} imports {sorted(forbidden)}"


def test_the_checker_sees_imports_inside_functions(tmp_path):
    source = tmp_path / "example.py"
    source.write_text("def f():\n    from demo import shop\n    import bench.push\n")
    assert {"demo", "demo.shop", "bench.push"} <= imported_modules(source)


def test_the_production_app_set_runs_without_the_demo_and_benchmark_apps():
    script = (
        "import django; django.setup()\n"
        "from django.apps import apps\n"
        "from django.core.management import call_command, get_commands\n"
        "from django.urls import NoReverseMatch, reverse\n"
        "assert not apps.is_installed('demo') and not apps.is_installed('bench')\n"
        "assert not {'seed_demo', 'bench_lists', 'run_demo_push_service'} & set(get_commands())\n"
        "assert 'rebuild_customer_stats' in get_commands()\n"
        "reverse('clients:client-list')\n"
        "try:\n"
        "    reverse('demo:storefront')\n"
        "except NoReverseMatch:\n"
        "    pass\n"
        "else:\n"
        "    raise AssertionError('the demo storefront is routed')\n"
        "call_command('check')\n"
        "print('production app set OK')\n"
    )
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "backoffice.settings",
        "DEV_APPS": "0",
        "DEBUG": "0",
        "SECRET_KEY": "x" * 50,
    }
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "production app set OK" in result.stdout
