"""Header lines of whole built messages within RFC 5322 and RFC 2047 for names and subjects of any length and script.

Each message is parsed back with ``policy.default``. Display names are also decoded by RFC 2047 6.2
(``email.header.decode_header``: the whitespace between two adjacent encoded words is not text), because
``policy.default`` in Python < 3.14 reads it as a space inside display names (CPython gh-128110): there it
must show the same characters, spaces aside.
"""

from __future__ import annotations

import email
import re
from email import policy
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.utils import getaddresses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumers.deliver.header_lines import encoded_words, mailbox, unstructured
from consumers.deliver.message import OutgoingEmail, build_message, clean_header_text
from consumers.deliver.rendering import RenderedEmail, Renderer
from consumers.notification import Notification
from ordernotify.config import Settings
from schemas.validation import MAX_TEXT, validate_event
from tests import factories as f

SETTINGS = Settings()
RENDERER = Renderer(SETTINGS)
EMAIL = "ada@example.org"
ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")
FOLD = re.compile(r"\r\n(?=[ \t])")
CYRILLIC_38 = "Александра Константиновна Преображенск"
LONG_NAMES = {
    "cyrillic": "Я" * MAX_TEXT,
    "cyrillic words": ("Александра Преображенская " * 40)[:MAX_TEXT].strip(),
    "ascii unbroken": "x" * MAX_TEXT,
    "ascii specials": ('O\'Brien, "Pat" \\ Smith; ' * 50)[:MAX_TEXT].strip(),
    "cjk": "山田太郎" * (MAX_TEXT // 4),
    "emoji": "😀👩‍👩‍👧" * (MAX_TEXT // 6),
    "combining": "e\u0301" * (MAX_TEXT // 2),
    "arabic": ("مرحبا بالعالم " * 80)[:MAX_TEXT].strip(),
}


def _build(display_name: str, order_id: str = "1234", subject: str | None = None) -> tuple[RenderedEmail, bytes]:
    event = f.shipped_event(order_id=order_id, customer=f.make_customer(display_name=display_name, email=EMAIL))
    validate_event(event)  # only what validation lets through
    notification = Notification.for_event(event)
    rendered = RENDERER.render(notification)
    if subject is not None:
        rendered = RenderedEmail(subject=subject, html=rendered.html, text=rendered.text, locale=rendered.locale)
    mail: OutgoingEmail = build_message(rendered, notification, SETTINGS)
    return rendered, mail.data


def _head_lines(data: bytes) -> list[bytes]:
    return data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")


def _raw_header(data: bytes, name: str) -> str:
    head = FOLD.sub("", data.split(b"\r\n\r\n", 1)[0].decode("ascii"))
    (value,) = [line.split(": ", 1)[1] for line in head.split("\r\n") if line.lower().startswith(name.lower() + ":")]
    return value


def _assert_within_limits(data: bytes, longest: int = 78) -> None:
    for line in _head_lines(data):
        assert len(line) <= 998, line[:80]
        assert len(line) <= longest, line
        for word in ENCODED_WORD.findall(line.decode("ascii")):
            assert len(word) <= 75, word
            assert str(make_header(decode_header(word)))  # whole characters: each word decodes on its own


def _assert_reads_back(data: bytes, display_name: str, subject: str) -> None:
    parsed = email.message_from_bytes(data, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    expected = clean_header_text(display_name)
    (to,) = parsed["To"].addresses
    assert to.addr_spec == EMAIL
    assert to.display_name.replace(" ", "") == expected.replace(" ", "")  # gh-128110: spaces may differ
    ((phrase, addr),) = getaddresses([_raw_header(data, "To")])
    assert addr == EMAIL
    assert str(make_header(decode_header(phrase))) == expected  # RFC 2047 6.2, exactly
    assert parsed["Subject"] == clean_header_text(subject)


def test_a_38_character_cyrillic_name_is_folded_into_encoded_words_of_at_most_75() -> None:
    assert len(CYRILLIC_38) == 38
    rendered, data = _build(CYRILLIC_38)
    lines = _head_lines(data)
    to = next(i for i, line in enumerate(lines) if line.startswith(b"To: "))
    assert lines[to + 1].startswith(b" ")  # folded, not one 112-character word
    _assert_within_limits(data)
    _assert_reads_back(data, CYRILLIC_38, rendered.subject)


@pytest.mark.parametrize("name", LONG_NAMES.values(), ids=LONG_NAMES.keys())
def test_a_name_as_long_as_validation_allows_folds_into_short_lines(name: str) -> None:
    assert len(name) <= MAX_TEXT
    rendered, data = _build(name)
    _assert_within_limits(data)
    _assert_reads_back(data, name, rendered.subject)


@pytest.mark.parametrize("order_id", LONG_NAMES.values(), ids=LONG_NAMES.keys())
def test_a_subject_with_an_order_id_as_long_as_validation_allows_folds_into_short_lines(order_id: str) -> None:
    rendered, data = _build("Ada", order_id=order_id)
    assert order_id.split()[0] in rendered.subject
    _assert_within_limits(data)
    _assert_reads_back(data, "Ada", rendered.subject)


@pytest.mark.parametrize("name", ['O\'Brien, Pat', 'Ada "The Countess" Lovelace', "back\\slash", "Dr. A. B.",
                                  "a@b.example", "<ada@example.org>", "Zoë, \"Ü\" \\ Ünal", "=?utf-8?q?x?="])
def test_display_names_with_specials_read_back_as_written(name: str) -> None:
    rendered, data = _build(name)
    _assert_within_limits(data)
    _assert_reads_back(data, name, rendered.subject)
    parsed = email.message_from_bytes(data, policy=policy.default)
    assert parsed["To"].addresses[0].display_name == clean_header_text(name)  # one line, one word: exact


def test_short_ascii_headers_are_written_as_they_are() -> None:
    assert mailbox("To", "Ada Lovelace", EMAIL) == b"To: Ada Lovelace <ada@example.org>\r\n"
    assert mailbox("To", "O'Brien, Pat", EMAIL) == b'To: "O\'Brien, Pat" <ada@example.org>\r\n'
    assert mailbox("To", "", EMAIL) == b"To: ada@example.org\r\n"
    assert unstructured("Subject", "Your order 1234: shipped") == b"Subject: Your order 1234: shipped\r\n"


def test_long_ascii_subject_is_folded_at_its_spaces() -> None:
    text = " ".join(["word"] * 60)
    lines = unstructured("Subject", text).split(b"\r\n")[:-1]
    assert len(lines) > 1 and all(len(line) <= 78 for line in lines)
    assert b"=?" not in b"".join(lines)
    assert FOLD.sub("", b"\r\n".join(lines).decode()) == f"Subject: {text}"


@pytest.mark.parametrize("text", ["😀" * 40, "é" * 100, "a😀" * 30, "山" * 50 + " x", "x y" * 60])
def test_encoded_words_hold_whole_characters_and_join_to_the_text(text: str) -> None:
    words = encoded_words(text)
    assert all(len(word) <= 75 for word in words)
    decoded = [str(make_header(decode_header(word))) for word in words]  # raises if a word split a character
    assert "".join(decoded) == text


# Any one line validation allows in a display name or order id: every script, emoji, combining marks,
# quotes, commas, backslashes, C1 controls; not C0 controls, DEL or U+2028/2029 (validation refuses them).
REFUSED = "".join(map(chr, range(0x20))) + "\x7f\u2028\u2029"
ONE_LINE = st.characters(exclude_categories=("Cs",), exclude_characters=REFUSED)
NAMES = st.one_of(
    st.text(ONE_LINE, max_size=60),
    st.text(ONE_LINE, min_size=200, max_size=MAX_TEXT),
    st.text(st.sampled_from("Я山😀é\u0301 ,\"\\'<>@;:.()"), min_size=1, max_size=MAX_TEXT),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(name=NAMES, order_id=NAMES.filter(lambda s: s.strip() != ""), items=st.lists(NAMES, max_size=3))
def test_any_name_and_subject_within_validation_make_lines_within_the_limits(
    name: str, order_id: str, items: list[str]
) -> None:
    subject = f"Your order {order_id[:40]}: " + ", ".join(items)  # item names in a subject, as a template may put them
    for with_subject in (None, subject):
        rendered, data = _build(name, order_id=order_id, subject=with_subject)
        assert data.isascii()
        _assert_within_limits(data, longest=78)
        _assert_reads_back(data, name, rendered.subject)
