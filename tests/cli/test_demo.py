"""The demo installs and imports only what it runs: the base package, none of the ``dev`` extra."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.dev_only import ROOT, dev_only_modules

SHIPPED = ("ordernotify", "schemas", "producers", "consumers", "templates", "devstack", "cli")

# Imports every module the wheel ships (not ``__main__``: it would run the command), builds the command
# line (which loads every subcommand), and prints the top-level names of what ended up in sys.modules.
_IMPORT_ALL = f"""
import importlib, json, pkgutil, sys
for name in {SHIPPED!r}:
    package = importlib.import_module(name)
    for module in pkgutil.walk_packages(package.__path__, name + "."):
        if not module.name.endswith(".__main__"):
            importlib.import_module(module.name)
import cli.main
cli.main.build_parser()
print(json.dumps(sorted({{m.split(".")[0] for m in sys.modules}})))
"""


def test_no_module_the_package_ships_imports_a_dev_only_package() -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", _IMPORT_ALL], capture_output=True, text=True, cwd=ROOT, env=env,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    loaded = set(json.loads(result.stdout.splitlines()[-1]))
    assert "cli" in loaded and "devstack" in loaded
    assert not loaded & dev_only_modules(), f"dev-only packages imported: {sorted(loaded & dev_only_modules())}"


def _make_dry_run(target: str, venv: Path) -> str:
    """The commands ``make TARGET`` would run on a machine without a virtual environment (nothing runs)."""
    result = subprocess.run(["make", "-n", target, f"VENV={venv}"], capture_output=True, text=True, cwd=ROOT,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_make_demo_installs_the_package_without_its_dev_extra(tmp_path: Path) -> None:
    demo = _make_dry_run("demo", tmp_path / "venv")
    assert "pip install" in demo and "ordernotify demo" in demo
    assert "[dev]" not in demo, demo


def test_make_test_installs_the_dev_extra(tmp_path: Path) -> None:
    assert "pip install -q -e '.[dev]'" in _make_dry_run("test", tmp_path / "venv")
