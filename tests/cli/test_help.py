"""``--help`` as a newcomer meets it: one screen per command, plain words, only the options it reads."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from cli.main import _commands, build_parser, main
from ordernotify.config import Settings, flag_name

COMMANDS = list(_commands())


@pytest.fixture(autouse=True)
def terminal_width(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")


def _help(command: str, show_advanced: bool = False) -> str:
    parser = build_parser(show_advanced)
    sub = next(a for a in parser._actions if a.dest == "command")
    return str(sub.choices[command].format_help())  # type: ignore[index]


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_help_fits_one_screen_in_plain_words(command: str) -> None:
    text = _help(command)
    assert len(text.splitlines()) <= 60, text
    for markup in ("``", ":mod:", ":class:", ":data:", ":func:"):
        assert markup not in text


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_help_names_the_settings_it_reads(command: str) -> None:
    spec = _commands()[command]
    text = _help(command)
    for f in dataclasses.fields(Settings):
        if f.metadata["group"] in spec.summarized:  # named in one line that points to --help-all
            assert "--help-all lists them" in text
            continue
        shown = f.metadata["group"] in spec.settings and not f.metadata["advanced"]
        named = re.search(re.escape(flag_name(f.name)) + r"(?![\w-])", text) is not None
        assert named == shown, flag_name(f.name)


def test_consume_shows_smtp_options_and_emit_none() -> None:
    assert "--smtp-host" in _help("consume") and "--smtp-port" in _help("consume")
    assert "--smtp" not in _help("emit") and "--shop" not in _help("emit")


def test_help_all_lists_the_tuning_and_summarized_options_too() -> None:
    text = _help("consume", show_advanced=True)
    for flag in ("--outbox-batch", "--shop-name", "--smtp-retry-budget-s", "--render-processes"):
        assert flag in text


def test_top_level_help_lists_each_command_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    lines = capsys.readouterr().out.splitlines()
    for command in COMMANDS:
        assert sum(1 for line in lines if line.split()[:1] == [command]) == 1, command
    assert len(lines) <= 30


def test_hidden_settings_still_come_from_the_environment_and_print_config_shows_all(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ORDERNOTIFY_OUTBOX_BATCH", "7")
    monkeypatch.setenv("ORDERNOTIFY_SHOP_NAME", "Tiny Shop")
    assert main(["emit", "--print-config"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert set(printed) == {f.name for f in dataclasses.fields(Settings)}
    assert printed["outbox_batch"] == 7 and printed["shop_name"] == "Tiny Shop"
    assert main(["consume", "--outbox-batch", "9", "--print-config"]) == 0
    assert json.loads(capsys.readouterr().out)["outbox_batch"] == 9


def test_a_command_imports_only_its_own_module_not_the_services_of_the_others() -> None:
    """The consumer, the bounce service and the gateway (aiohttp, the render processes...) are most of a short
    command's start-up; `emit` and `status` need none of them."""
    import subprocess
    import sys

    code = ("import os, sys\nfrom cli.main import main\nmain(['emit', '--dry-run', os.devnull])\n"
            "print(sorted(m for m in ('consumers.service', 'feedback.service', 'gateway.app', 'cli.demo') "
            "if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
