"""Which importable packages only the ``dev`` extra installs: what nothing the demo runs may import.

Read from pyproject.toml (the ``dev`` extra minus the base dependencies and the ``postgres`` extra),
mapped to import names through the installed distributions, plus what moto brings along.
"""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# moto's own dependencies that the base install never has (boto3 and the CloudFormation linter).
_BROUGHT_BY_MOTO = {"boto3", "botocore", "cfnlint", "moto"}


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\[<>=~!; ]", r, maxsplit=1)[0].lower().replace("_", "-") for r in requirements}


def dev_only_modules() -> frozenset[str]:
    """Top-level import names of the distributions only the ``dev`` extra installs."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    dev_only = _names(extras["dev"]) - _names(project["dependencies"]) - _names(extras.get("postgres", []))
    modules = {
        module for module, distributions in packages_distributions().items()
        if any(d.lower().replace("_", "-") in dev_only for d in distributions)
    }
    return frozenset(modules | _BROUGHT_BY_MOTO)
