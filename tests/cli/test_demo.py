"""The demo installs and imports only what it runs: the base package, none of the ``dev`` extra."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

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


# Loaded first by every Python process started with this folder on PYTHONPATH (the render processes too):
# an import of a dev-only package fails there as it would in a virtual environment without the dev extra.
_WITHOUT_DEV_EXTRA = """
import sys
from importlib.abc import MetaPathFinder

BLOCKED = frozenset({blocked!r})

class _NotInstalled(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}} (dev extra not installed)", name=name)
        return None

sys.meta_path.insert(0, _NotInstalled())
"""


@pytest.mark.integration
@pytest.mark.slow
def test_the_demo_runs_without_the_dev_extra_and_lists_every_email(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(_WITHOUT_DEV_EXTRA.format(blocked=sorted(dev_only_modules())))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERNOTIFY_")}
    env["PYTHONPATH"] = f"{site}{os.pathsep}{ROOT}"
    probe = subprocess.run([sys.executable, "-c", "import yaml"], capture_output=True, text=True, env=env, timeout=60)
    assert "dev extra not installed" in probe.stderr  # the blocker is in place
    outbox = tmp_path / "outbox"
    result = subprocess.run([sys.executable, "-m", "cli", "demo", "--orders", "4", "--outbox", str(outbox)],
                            capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    emails = sorted(outbox.glob("*.eml"))
    assert len(emails) >= 4
    index = (outbox / "index.html").read_text(encoding="utf-8")
    assert all(f'href="{eml.stem}.html"' in index and (outbox / f"{eml.stem}.html").is_file() for eml in emails)
    assert '<span class="kind">order_placed</span>' in index
