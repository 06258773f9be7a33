"""Tests write only to temporary directories, never into the source tree; Hypothesis's own storage included."""

from __future__ import annotations

from pathlib import Path

from hypothesis.configuration import storage_directory

ROOT = Path(__file__).resolve().parents[1]


def test_hypothesis_keeps_its_database_and_caches_outside_the_source_tree() -> None:
    """Before, a run left .hypothesis/ (example database, constants, Unicode tables) in the checkout."""
    for name in ("examples", "constants", "unicode_data"):
        where = storage_directory(name, intent_to_write=False).path.resolve()
        assert ROOT not in where.parents, where

