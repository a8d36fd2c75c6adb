"""Imports run downward: the library never reaches up into the command modules, and metrics
never into recipes (issue 15's first cut; `gan/inference.py` holds what all of them share)."""

import ast

import pytest
from conftest import REPO

COMMAND_MODULES = {"gan.cli", "gan.translate", "gan.sample", "gan.evaluate", "gan.export", "gan.bench"}
LIBRARY_PACKAGES = ("recipes", "metrics", "nets", "data")


def imported_modules(path) -> set[str]:
    """Every module a file imports, at the top or inside functions."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


@pytest.mark.parametrize("package", LIBRARY_PACKAGES)
def test_library_packages_import_no_command_module(package):
    offenders = {str(path.relative_to(REPO)): sorted(imported_modules(path) & COMMAND_MODULES)
                 for path in (REPO / "gan" / package).rglob("*.py")}
    assert {path: found for path, found in offenders.items() if found} == {}


def test_metrics_import_no_recipe():
    offenders = {str(path.relative_to(REPO)): sorted(name for name in imported_modules(path)
                                                     if name.startswith("gan.recipes"))
                 for path in (REPO / "gan" / "metrics").rglob("*.py")}
    assert {path: found for path, found in offenders.items() if found} == {}
