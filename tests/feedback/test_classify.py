"""Real-world bounces, complaints and auto-replies read to the right kind, status and recipient; bad input never
raises. The corpus and where each message came from: tests/feedback/corpus/README.md."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from feedback.classify import MAX_PARSED_BYTES, Feedback, FeedbackKind, classify_message

CORPUS = Path(__file__).parent / "corpus"
HARD, SOFT, COMPLAINT, AUTO, UNKNOWN = (FeedbackKind.HARD_BOUNCE, FeedbackKind.SOFT_BOUNCE, FeedbackKind.COMPLAINT,
                                        FeedbackKind.AUTO_REPLY, FeedbackKind.UNKNOWN)

CASES = [  # file, kind, status, recipient, source
    ("postfix-hard-5.1.1.eml", HARD, "5.1.1", "ann@example.org", "dsn"),
    ("postfix-delayed-4.4.1.eml", SOFT, "4.4.1", "bob@example.org", "dsn"),
    ("exim-policy-5.7.0.eml", SOFT, "5.7.0", "cat@example.org", "dsn"),
    ("gmail-text-5.1.1.eml", HARD, "5.1.1", "dan@example.org", "dsn"),
    ("outlook-mailbox-full-5.2.2.eml", SOFT, "5.2.2", "eve@example.org", "dsn"),
    ("office365-ndr-5.1.351.eml", HARD, "5.1.351", "frank@example.org", "dsn"),
    ("yahoo-arf-complaint.eml", COMPLAINT, None, "grace@example.org", "arf"),
    ("aol-style-arf-redacted.eml", COMPLAINT, None, None, "arf"),
    ("vacation-rfc3834.eml", AUTO, None, "heidi@example.org", "auto_reply"),
    ("vacation-x-autoreply.eml", AUTO, None, "ivan@example.org", "auto_reply"),
    ("two-recipients-report.eml", HARD, "5.1.1", "karl@example.org", "dsn"),
    ("malformed-dsn-without-final-recipient.eml", UNKNOWN, None, None, "dsn"),
    ("malformed-truncated-mime.eml", UNKNOWN, None, None, "unparsed"),
]


def test_every_corpus_file_is_in_the_table_and_named_in_the_readme() -> None:
    files = {path.name for path in CORPUS.glob("*.eml")}
    assert files == {case[0] for case in CASES}
    readme = (CORPUS / "README.md").read_text(encoding="utf-8")
    assert all(name in readme for name in files)
    assert all(path.stat().st_size < 8 * 1024 for path in CORPUS.glob("*.eml"))


@pytest.mark.parametrize(("name", "kind", "status", "recipient", "source"), CASES, ids=[c[0] for c in CASES])
def test_corpus_message_is_read_as_its_kind_status_and_recipient(
    name: str, kind: FeedbackKind, status: str | None, recipient: str | None, source: str,
) -> None:
    feedback = classify_message((CORPUS / name).read_bytes())
    assert (feedback.kind, feedback.status, feedback.recipient, feedback.source) == (kind, status, recipient, source)
    assert (feedback.detail != "") == (kind is UNKNOWN)
    assert feedback.diagnostic is None or ("\n" not in feedback.diagnostic and len(feedback.diagnostic) <= 200)


def test_a_diagnostic_is_the_servers_reply_in_one_line() -> None:
    feedback = classify_message((CORPUS / "postfix-hard-5.1.1.eml").read_bytes())
    assert feedback.diagnostic == "550 5.1.1 Address rejected ann@example.org"
    exim = classify_message((CORPUS / "exim-policy-5.7.0.eml").read_bytes())
    assert exim.diagnostic is not None and exim.diagnostic.startswith("host mx.example.org [192.0.2.20]: 550 5.7.0")


def test_a_report_naming_only_delivered_recipients_is_unknown_with_why() -> None:
    raw = (CORPUS / "two-recipients-report.eml").read_bytes().replace(b"Action: delayed", b"Action: delivered") \
        .replace(b"Action: failed", b"Action: relayed")
    feedback = classify_message(raw)
    assert feedback.kind is UNKNOWN and "no failed or delayed recipient" in feedback.detail
    assert feedback.recipient == "judy@slow.example.org"


def test_a_feedback_report_that_is_not_a_complaint_is_unknown() -> None:
    raw = (CORPUS / "yahoo-arf-complaint.eml").read_bytes().replace(b"Feedback-Type: abuse",
                                                                     b"Feedback-Type: auth-failure")
    feedback = classify_message(raw)
    assert feedback.kind is UNKNOWN and "auth-failure" in feedback.detail


def _is_unknown(feedback: Feedback, why: str) -> bool:
    return feedback.kind is UNKNOWN and why in feedback.detail and feedback.recipient is None


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"", "empty message"),
        (b"  \r\n\r\n", "empty message"),
        (b"\x00\xff\xfe" + os.urandom(4096).replace(b":", b"") + b"\x00", "not a message"),
        (b"Subject: hello\r\n\r\nJust a message to the bounce address.\r\n", "neither a delivery status"),
        (b"Content-Type: multipart/report; boundary=\"\r\n\r\n--\r\n--\r\n", "neither a delivery status"),
        (b"Content-Type: message/delivery-status\r\nContent-Transfer-Encoding: base64\r\n\r\n!!not base64!!",
         "without a recipient block"),
    ],
    ids=["empty", "blank", "binary", "plain", "broken-boundary", "bad-encoding"],
)
def test_bad_input_is_unknown_with_a_reason_never_an_exception(raw: bytes, why: str) -> None:
    assert _is_unknown(classify_message(raw), why), classify_message(raw)


def test_ten_megabytes_is_read_only_up_to_the_limit_and_the_report_before_it_still_counts() -> None:
    report = (CORPUS / "postfix-hard-5.1.1.eml").read_bytes()
    head, _, tail = report.rpartition(b"test\n")
    huge = head + b"x" * (10 * 1024 * 1024) + b"\n" + tail
    assert len(huge) > 10 * MAX_PARSED_BYTES
    feedback = classify_message(huge)
    assert (feedback.kind, feedback.recipient) == (HARD, "ann@example.org")
    assert _is_unknown(classify_message(b"Subject: x\r\n\r\n" + b"\xff" * (10 * 1024 * 1024)), "neither")


def test_a_bomb_of_nested_parts_is_cut_not_followed() -> None:
    depth = 5000
    raw = b"".join(b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i) for i in range(depth))
    feedback = classify_message(raw)
    assert feedback.kind is UNKNOWN and feedback.detail


def test_a_complaint_names_its_recipient_from_the_returned_message_when_the_report_does_not() -> None:
    raw = (CORPUS / "yahoo-arf-complaint.eml").read_bytes().replace(b"Original-Rcpt-To: grace@example.org\n", b"")
    feedback = classify_message(raw)
    assert (feedback.kind, feedback.recipient) == (COMPLAINT, "grace@example.org")
