"""A test that configures logging (as every command run with ``main([...])`` does) leaves none of it behind.

The two tests run in this order, in one process (``--dist loadfile`` keeps a file's tests together)."""

from __future__ import annotations

import logging

import pytest

from ordernotify.logs import configure_logging


def test_a_command_configures_logging_onto_this_tests_captured_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO")
    logging.getLogger("ordernotify.test").warning("written to the captured stderr")
    assert "written to the captured stderr" in capsys.readouterr().err


def test_the_next_test_logs_to_no_stream_the_last_one_closed() -> None:
    """Before, the handler above stayed on the root logger, writing to a stream pytest had closed: each later log
    line of the process printed "--- Logging error ---" and a traceback into the next failing test's report."""
    streams = [h.stream for h in logging.getLogger().handlers if isinstance(h, logging.StreamHandler)]
    assert not [stream for stream in streams if stream.closed]
    assert logging.getLogger("kafka").level == logging.NOTSET
