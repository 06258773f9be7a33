"""Header fields -> their physical lines, within RFC 5322 and RFC 2047, whatever the text's length or script.

A customer's name or an order id may be up to 1,000 characters of any script (``schemas.validation.MAX_TEXT``).
Written as one encoded word, a 38-character Cyrillic name is 112 characters long and a 1,000-character one a
line of thousands of octets: RFC 2047 allows 75 characters an encoded word, RFC 5322 998 octets a line, and
mail servers refuse or cut what is longer. So here:

- text that is ASCII and fits one line (78 characters) is written as it is;
- longer ASCII text in an unstructured field (Subject) is folded at its spaces if its words allow;
- anything else (non-ASCII, an ASCII word too long for a line, a long display name) becomes a run of
  encoded words of at most 75 characters, each holding whole characters (a UTF-8 sequence is never split),
  one to a line, so every line is at most 78 characters but for an address longer than that, which cannot be
  folded (at most 256).

The whitespace between two encoded words is not part of the text (RFC 2047 6.2), so a word ends after one of
the text's spaces where it can (in the second half of the word), inside the word, else between two characters.
Readers that wrongly show that whitespace as a space (Python's ``policy.default`` before gh-128110, in display
names) then show at worst a double space where the text has one, rather than a space inside a word.

Q or B encoding, whichever is shorter for the text, as ``email.header.Header`` chooses. The standard
library's ``email.policy.SMTP`` folder does the same but costs ~900 µs for To and Subject (against ~20 µs
here) and, in Python 3.11, still writes an unbroken 1,000-character ASCII name as one 1,001-octet line.

The text given must already be one clean line (``message.clean_header_text``): no control characters, single
spaces, no encoded-word opener.
"""

from __future__ import annotations

import binascii
import functools
from email.utils import formataddr

MAX_LINE = 78  # RFC 5322 2.1.1: SHOULD; every line here keeps it unless one address alone is longer
MAX_ENCODED_WORD = 75  # RFC 2047 2
MAX_LINE_OCTETS = 998  # RFC 5322 2.1.1: MUST
CRLF = "\r\n"
_B_PREFIX, _Q_PREFIX, _SUFFIX = "=?utf-8?b?", "=?utf-8?q?", "?="
_OVERHEAD = len(_B_PREFIX) + len(_SUFFIX)
# What Q may write as itself in a phrase (RFC 2047 5 (3)) and so anywhere; the space becomes "_".
_Q_LITERAL = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/ ")
_Q_LITERAL_BYTES = bytes(sorted(_Q_LITERAL))
_MIN_FIRST_WORD = _OVERHEAD + 12  # room for one character of any length in either encoding


def unstructured(name: str, text: str) -> bytes:
    """``Name: text`` as one or more lines ending in CRLF (Subject, Content-Language...)."""
    first = f"{name}: {text}"
    if text.isascii():
        if len(first) <= MAX_LINE:
            return f"{first}\r\n".encode("ascii")
        folded = _fold_at_spaces(name, text)
        if folded is not None:
            return folded
    return _lines(name, text, "")


def mailbox(name: str, display_name: str, addr_spec: str) -> bytes:
    """``Name: display name <addr-spec>`` (To, From), the name quoted or encoded as it needs.

    ``addr_spec`` must have been checked to be one plain address; the display name may hold anything clean
    (quotes, commas, backslashes, any script).
    """
    if not display_name:
        return f"{name}: {addr_spec}\r\n".encode("ascii")
    angle = f"<{addr_spec}>"
    if display_name.isascii():
        phrase = formataddr((display_name, addr_spec)).rpartition(" <")[0]  # quoted and escaped if it needs
        if len(name) + len(phrase) + len(angle) + 3 <= MAX_LINE:
            return f"{name}: {phrase} {angle}\r\n".encode("ascii")
        if len(name) + len(phrase) + 2 <= MAX_LINE:
            return f"{name}: {phrase}\r\n {angle}\r\n".encode("ascii")
    return _lines(name, display_name, angle)


def encoded_words(text: str, first: int = MAX_ENCODED_WORD) -> list[str]:
    """``text`` as RFC 2047 encoded words of at most 75 characters (the first at most ``first``), whole
    characters in each.

    Whitespace between adjacent encoded words is not part of the text (RFC 2047 6.2), so the text's own
    spaces are inside the words.
    """
    raw = text.encode("utf-8")
    escaped = len(raw.translate(None, _Q_LITERAL_BYTES))
    if len(raw) + 2 * escaped <= 4 * -(-len(raw) // 3):
        return _q_words(text, first)
    return _b_words(raw, first)


def _b_words(raw: bytes, first: int) -> list[str]:
    words = []
    start = 0
    room = first
    while start < len(raw):
        end = min(start + (room - _OVERHEAD) // 4 * 3, len(raw))  # 45 octets (60 base64 characters) in 75
        while end < len(raw) and 0x80 <= raw[end] < 0xC0:  # a continuation byte: cut before its character
            end -= 1
        space = raw.rfind(b" ", start, end)
        if end < len(raw) and space >= (start + end) // 2:
            end = space + 1
        words.append(_B_PREFIX + binascii.b2a_base64(raw[start:end], newline=False).decode("ascii") + _SUFFIX)
        start, room = end, MAX_ENCODED_WORD
    return words


def _q_words(text: str, first: int) -> list[str]:
    room = first - _OVERHEAD
    words: list[str] = []
    current: list[str] = []
    used = 0
    for char in text:
        encoded = _q_char(char)
        if used + len(encoded) > room:
            room = MAX_ENCODED_WORD - _OVERHEAD
            cut = _after_last_space(current)
            carried = sum(map(len, current[cut:]))
            if carried + len(encoded) > room:
                cut, carried = len(current), 0
            words.append(_Q_PREFIX + "".join(current[:cut]) + _SUFFIX)
            current, used = current[cut:], carried
        current.append(encoded)
        used += len(encoded)
    if current:
        words.append(_Q_PREFIX + "".join(current) + _SUFFIX)
    return words


def _after_last_space(encoded: list[str]) -> int:
    """Where to end a word: after its last space if that is in its second half, else after all of it."""
    for i in range(len(encoded) - 1, len(encoded) // 2 - 1, -1):
        if encoded[i] == "_":
            return i + 1
    return len(encoded)


@functools.lru_cache(maxsize=4096)
def _q_char(char: str) -> str:
    if char == " ":
        return "_"
    raw = char.encode("utf-8")
    if len(raw) == 1 and raw[0] in _Q_LITERAL:
        return char
    return "".join(f"={byte:02X}" for byte in raw)


def _lines(name: str, text: str, tail: str) -> bytes:
    """``Name:`` and ``text`` as encoded words one to a line, then ``tail`` (an address) where it fits.

    The first word is made short enough for the header name's line (a 75-character word after "Subject: "
    would make 84).
    """
    room = min(MAX_ENCODED_WORD, MAX_LINE - len(name) - 2)
    lines = [f"{name}:"]
    if room < _MIN_FIRST_WORD:  # a long header name: the words start on the next line
        lines.append("")
        room = MAX_ENCODED_WORD
    for word in encoded_words(text, room):
        lines[-1] += " " + word
        lines.append("")
    lines.pop()
    if tail:
        if len(lines[-1]) + 1 + len(tail) <= MAX_LINE:
            lines[-1] += " " + tail
        else:
            lines.append(" " + tail)
    return (CRLF.join(lines) + CRLF).encode("ascii")


def _fold_at_spaces(name: str, text: str) -> bytes | None:
    """ASCII text folded before its spaces into lines of at most 78 characters; None if a word is too long for
    that (the text is then encoded, which can be cut anywhere)."""
    lines = [f"{name}:"]
    for word in text.split(" "):
        if lines[-1] != f"{name}:" and len(lines[-1]) + 1 + len(word) > MAX_LINE:
            lines.append("")
        lines[-1] += " " + word
        if len(lines[-1]) > MAX_LINE:
            return None
    return (CRLF.join(lines) + CRLF).encode("ascii")
