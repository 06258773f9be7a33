"""Lines parsed and encoded in other processes give exactly the outcomes, in the order, of one process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ordernotify.config import Settings
from producers import line_encoding
from producers.line_encoding import EncodedLine, encoded_lines
from schemas.codec import EventCodec
from schemas.records import to_json_record
from tests import factories

SETTINGS = Settings()


def _lines(count: int) -> list[str]:
    """Valid events and preferences with refused, blank and non-UTF-8 lines among them."""
    lines: list[str] = []
    for i in range(count):
        if i % 7 == 3:
            lines.append('{"event_type": "ORDER_PLACED"}\n')  # refused: fields missing
        elif i % 11 == 5:
            lines.append("\n")  # blank: skipped, but numbered
        elif i % 13 == 6:
            lines.append('{"not utf-8": "\udcff"}\n')  # as read with errors="surrogateescape"
        elif i % 17 == 8:
            lines.append(json.dumps({"preferences": {"customer_id": f"c-{i}", "informational_updates": False,
                                                     "updated_at": "2026-11-23T10:00:00Z"}}) + "\n")
        else:
            lines.append(json.dumps(to_json_record(factories.placed_event(order_id=f"o-{i}"))) + "\n")
    return lines


def _outcomes(lines: list[str], processes: int) -> list[EncodedLine]:
    with encoded_lines(lines, SETTINGS, processes) as outcomes:
        return list(outcomes)


@pytest.mark.parametrize("processes", [1, 2])
def test_other_processes_give_the_same_outcomes_in_the_same_order(
        processes: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(line_encoding, "CHUNK_LINES", 9)  # many chunks, each line's number across chunk borders
    lines = _lines(120)
    here = _outcomes(lines, 0)
    there = _outcomes(lines, processes)
    assert there == here
    assert [o.line_number for o in there] == [n for n, text in enumerate(lines, start=1) if text.strip()]
    assert {bool(o.refusal) for o in there} == {True, False}
    assert any(o.what.startswith("preferences") for o in there)
    assert any("not UTF-8" in o.refusal for o in there)


def test_one_instant_serves_every_chunk_for_relative_times(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(line_encoding, "CHUNK_LINES", 2)
    record = to_json_record(factories.placed_event())
    lines = [json.dumps({**record, "event_id": f"00000000-0000-4000-8000-{i:012d}", "occurred_at": "now-5m"})
             for i in range(7)]
    outcomes = _outcomes(lines, 2)
    codec = EventCodec()
    occurred = {codec.decode(o.record.value).occurred_at for o in outcomes if o.record is not None}
    assert len(outcomes) == 7 and len(occurred) == 1


def test_a_file_of_nothing_but_blank_lines_has_no_outcomes(tmp_path: Path) -> None:
    assert _outcomes(["\n", "  \n"], 2) == []
