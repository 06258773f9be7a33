"""``--help`` as a newcomer reads it: plain words, one line per option where the terminal allows."""

from __future__ import annotations

import argparse
import re
import shutil

# reST roles (:mod:`x`, :data:`X`) and literals (``x``) of the docstrings the descriptions come from
_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")
_LITERAL = re.compile(r"``([^`]+)``")


def plain(text: str) -> str:
    """Docstring text without reST markup: ``x`` and :mod:`x` become x."""
    return _LITERAL.sub(r"\1", _ROLE.sub(r"\1", text))


def summary(doc: str | None, fallback: str) -> str:
    """A command's description: the first paragraph of its module docstring, in plain words."""
    first = (doc or fallback).strip().split("\n\n", 1)[0]
    return plain(" ".join(first.split()))


class CompactHelpFormatter(argparse.HelpFormatter):
    """Options in a 38-column left margin, help on the same line, at most 100 columns wide."""

    def __init__(self, prog: str) -> None:
        width = min(100, shutil.get_terminal_size((100, 24)).columns) - 2
        super().__init__(prog, max_help_position=38, width=width)
