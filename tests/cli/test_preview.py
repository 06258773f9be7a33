"""``ordernotify preview``: the gallery written where the user asks, and a folder it cannot write named."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli import preview
from cli.main import main
from consumers.deliver.catalogs import available_languages
from consumers.deliver.preview import SAMPLES
from ordernotify.config import Settings
from templates import TEMPLATE_DIR

LANGUAGES = tuple(sorted(set(available_languages(TEMPLATE_DIR / "locale")) | {"en"}))


def test_preview_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["preview", "--out", str(tmp_path / "p"), "--shop-name", "Bäckerei Müller"]) == 0
    assert f"{len(SAMPLES) * len(LANGUAGES)} e-mails written" in capsys.readouterr().out
    assert "Bäckerei Müller" in (tmp_path / "p" / "index.html").read_text(encoding="utf-8")


def test_preview_command_reports_a_folder_it_cannot_write(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    args = type("Args", (), {"out": blocker / "sub"})()
    assert preview.run(args, Settings()) == 1  # type: ignore[arg-type]
    assert "cannot write" in capsys.readouterr().err
