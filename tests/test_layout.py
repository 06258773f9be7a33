"""Imports run one way: the commands use the packages, the packages use ``ordernotify``, never back up.

A package that imported a command (or the base that imported a package built on it) would tie the
folders into a cycle again: a consumer could not be imported without the whole command line, and the
base could not be read without what stands on it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# What each folder may import of the project's own packages; the table is the layering.
MAY_IMPORT: dict[str, set[str]] = {
    "ordernotify": set(),
    "schemas": {"ordernotify"},
    "templates": set(),
    "producers": {"ordernotify", "schemas"},
    "consumers": {"ordernotify", "schemas", "templates"},
    "devstack": {"ordernotify"},
    "feedback": {"ordernotify", "schemas", "consumers"},
    "gateway": {"ordernotify", "schemas", "producers"},
    "cli": {"ordernotify", "schemas", "producers", "consumers", "templates", "devstack", "feedback", "gateway"},
}


def _imported(path: Path) -> set[str]:
    """Top-level names of the modules a file imports, lazy ``import_module("a.b")`` calls included."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            called = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if called in ("import_module", "lazy") and isinstance(node.args[0].value, str):
                names.add(node.args[0].value)
    return {name.split(".")[0] for name in names}


@pytest.mark.parametrize("package", sorted(MAY_IMPORT))
def test_a_package_imports_only_the_layers_below_it(package: str) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"{package}/ has no modules"
    wrong = {
        f"{path.relative_to(ROOT)} imports {name}"
        for path in files
        for name in _imported(path) & set(MAY_IMPORT) - MAY_IMPORT[package] - {package}
    }
    assert not wrong, sorted(wrong)


def test_every_package_the_wheel_holds_is_in_the_table() -> None:
    import tomllib

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = {pattern.rstrip("*") for pattern in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert packages == set(MAY_IMPORT)
