"""The README's first example, as written: ``ordernotify emit schemas/examples/events.jsonl``, then a consumer.

Real broker, real SMTP server. The examples' times are relative to now, so this holds whenever it runs;
emitting the file again is deduplicated by event id.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.main import main
from devstack.smtp_capture import SmtpCapture
from ordernotify.config import Settings
from tests.consumer_runner import ConsumerRunner

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "schemas" / "examples" / "events.jsonl"
EVENT_LINES = 9  # and one preferences line


def _emit(settings: Settings) -> int:
    return main(["emit", str(EXAMPLES), "--bootstrap-servers", settings.bootstrap_servers,
                 "--events-topic", settings.events_topic, "--preferences-topic", settings.preferences_topic])


def test_emitting_the_examples_file_sends_emails_and_emitting_it_again_sends_none(
        settings: Settings, smtp_server: SmtpCapture, capsys: pytest.CaptureFixture[str]) -> None:
    assert _emit(settings) == 0
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == EVENT_LINES + 1
    assert "10 sent, 0 refused, 0 failed" in err
    with ConsumerRunner(settings) as runner:
        runner.wait_handled(EVENT_LINES)
        runner.wait_idle()
        first = list(smtp_server.messages)
        subjects = sorted(m.subject for m in first)

        assert _emit(settings) == 0
        runner.wait_handled(2 * EVENT_LINES)
        runner.wait_idle()
        not_sent = runner.not_sent_when(lambda counts: counts.get("superseded") == 1)
    # Order o-2026-1117: order placed, out of stock and price error always; shipped and delivered merged into
    # one, unless the customer's opt-out (the file's last line) was read before they were decided.
    # Order o-2026-1118: the cancelled item with its refund (one e-mail), and the missed delivery, which
    # drops the "arriving today" news still waiting in its window.
    first_order = [m for m in first if "o-2026-1117" in m.body("plain")]
    second_order = [m for m in first if "o-2026-1118" in m.body("plain")]
    assert len(first_order) in (3, 4) and len(second_order) == 2, subjects
    assert len(first_order) + len(second_order) == len(first)
    assert all(m.rcpt_tos == ("zoe.hartley@example.org",) for m in first_order)
    assert all(m.rcpt_tos == ("lena.gross@example.org",) for m in second_order)
    assert not_sent.get("superseded") == 1
    assert "too_old" not in not_sent
    assert not_sent.get("duplicate_delivery") == EVENT_LINES
    assert len(smtp_server.messages) == len(first)
