"""Every e-mail checked against what Gmail, Outlook, Apple Mail, Yahoo and Samsung Email support.

The data is Can I email's, through the npm package @jsx-email/doiuse-email (pinned in
email_lint/package-lock.json), run by email_lint/lint.mjs with the machine's node. The package
is installed once per version into ~/.cache/ordernotify-test/, never into the source tree.
A finding is allowed only if email_lint/accepted.toml lists it with the fallback that keeps
the e-mail readable in that client; an entry that no e-mail needs any more fails too, so the
list says what the templates really rely on.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import tomllib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

from consumers.deliver.preview import write_gallery
from ordernotify.config import Settings

pytestmark = pytest.mark.integration

LINT_DIR = Path(__file__).parent / "email_lint"
LINT_FILES = ("package.json", "package-lock.json", "lint.mjs")
ACCEPTED = LINT_DIR / "accepted.toml"
CLIENT = re.compile(r"(gmail|outlook|apple-mail|yahoo|samsung-email)\.[a-z-]+")
# Every optional part of the layout switched on: logo, phone, chat, help pages, complaints, address.
SETTINGS = Settings(logo_url="https://shop.example/logo.png", support_phone="+44 20 7946 0958",
                    chat_url="https://shop.example/chat")


@dataclass(frozen=True, slots=True)
class Finding:
    feature: str
    client: str
    support: str  # "none" or "partial"


@dataclass(frozen=True, slots=True)
class Accepted:
    unsupported: dict[tuple[str, str], str]  # (feature, client) -> fallback
    partial: dict[str, str]  # feature -> why the part we use is enough


def _cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ordernotify-test"


@pytest.fixture(scope="session")
def email_lint() -> Path:
    """lint.mjs beside its node_modules, installed with ``npm ci`` once per version of the three files."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm not found: install the Debian packages nodejs and npm (bash scripts/system-deps.sh)")
    digest = hashlib.sha256(b"".join((LINT_DIR / name).read_bytes() for name in LINT_FILES)).hexdigest()[:16]
    target = _cache_root() / f"email-lint-{digest}"
    if not (target / "node_modules" / "@jsx-email" / "doiuse-email" / "package.json").exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix="email-lint-", dir=target.parent))
        for name in LINT_FILES:
            shutil.copy2(LINT_DIR / name, staging / name)
        done = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"], cwd=staging,
                              capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            pytest.fail(f"npm ci of {LINT_DIR} failed ({done.returncode}):\n{done.stderr[-2000:]}")
        try:
            staging.rename(target)
        except OSError:  # another test process installed the same version meanwhile
            shutil.rmtree(staging, ignore_errors=True)
    return target / "lint.mjs"


def run_lint(script: Path, files: list[Path]) -> dict[Path, list[Finding]]:
    node = shutil.which("node") or "node"
    done = subprocess.run([node, str(script), *map(str, files)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    return {Path(name): [Finding(**f) for f in findings] for name, findings in report.items()}


def load_accepted(path: Path = ACCEPTED) -> Accepted:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    unsupported: dict[tuple[str, str], str] = {}
    for entry in data["unsupported"]:
        for client in entry["clients"]:
            unsupported[(entry["feature"], client)] = entry["fallback"].strip()
    return Accepted(unsupported, {feature: why.strip() for feature, why in data["partial"].items()})


@pytest.fixture(scope="module")
def findings(email_lint: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[Path, list[Finding]]:
    """The lint's findings for every preview sample (each kind: one item, many, long names...) in every language."""
    gallery = tmp_path_factory.mktemp("gallery")
    pages = [p for p in write_gallery(gallery, SETTINGS) if p.suffix == ".html" and p.name != "index.html"]
    assert len(pages) >= 45
    return {page.relative_to(gallery): found for page, found in run_lint(email_lint, pages).items()}


def test_the_accepted_list_is_well_formed() -> None:
    accepted = load_accepted()
    for (feature, client), fallback in accepted.unsupported.items():
        assert CLIENT.fullmatch(client), f"{feature}: {client!r} is not a checked client"
        assert len(fallback) > 40, f"{feature} in {client}: say how the e-mail still reads well there"
    for feature, why in accepted.partial.items():
        assert len(why) > 30, f"{feature} (partial): say why the part we use is enough"


def test_every_unsupported_feature_has_an_accepted_fallback(findings: dict[Path, list[Finding]]) -> None:
    accepted = load_accepted()
    unaccepted: dict[tuple[str, str], list[str]] = defaultdict(list)
    for page, found in findings.items():
        for f in found:
            if f.support == "none" and (f.feature, f.client) not in accepted.unsupported:
                unaccepted[(f.feature, f.client)].append(page.as_posix())
            if f.support == "partial" and f.feature not in accepted.partial:
                unaccepted[(f.feature, f"{f.client} (partial)")].append(page.as_posix())
    assert not unaccepted, (
        "features some e-mail clients lack; give the e-mail a fallback and list it in "
        "tests/templates/email_lint/accepted.toml, "
        "or drop the feature:\n"
        + "\n".join(f"  {feature} in {client}: {pages[0]} and {len(pages) - 1} more"
                    for (feature, client), pages in sorted(unaccepted.items()))
    )


def test_no_accepted_entry_is_stale(findings: dict[Path, list[Finding]]) -> None:
    accepted = load_accepted()
    seen_unsupported = {(f.feature, f.client) for found in findings.values() for f in found if f.support == "none"}
    seen_partial = {f.feature for found in findings.values() for f in found if f.support == "partial"}
    stale = sorted(f"{feature} in {client}" for feature, client in set(accepted.unsupported) - seen_unsupported)
    stale += sorted(f"{feature} (partial)" for feature in set(accepted.partial) - seen_partial)
    assert not stale, f"no e-mail needs these entries of {ACCEPTED.name} any more; remove them:\n  " + "\n  ".join(
        stale)


def test_the_lint_sees_what_a_template_adds(email_lint: Path, tmp_path: Path) -> None:
    """A feature Gmail lacks, in a style attribute as the inliner writes it, is reported: the check can fail."""
    page = tmp_path / "new-template.html"
    page.write_text('<!DOCTYPE html><html><body><p style="overflow-wrap: anywhere; font-size: 16px;">'
                    "Donaudampfschifffahrtsgesellschaft</p></body></html>", encoding="utf-8")
    found = run_lint(email_lint, [page])[page]
    assert Finding("overflow-wrap", "gmail.desktop-webmail", "none") in found
    assert ("overflow-wrap", "gmail.desktop-webmail") not in load_accepted().unsupported
