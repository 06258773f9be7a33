"""Break opportunities written into long unbroken runs of an e-mail's text, where the HTML is made.

Product names, order and tracking numbers, addresses and URLs shown as text can be
longer than a phone's line. ``overflow-wrap`` and ``word-break`` would let the
browser break them, but Gmail, Outlook, Apple Mail and Yahoo ignore one or both
(tests/templates/email_lint/accepted.toml), and ``<wbr>`` is dropped by Gmail for iOS and
Outlook for Windows. So the text itself carries the break opportunities, which
every client honours: a soft hyphen (U+00AD) in a long word of letters, shown as a
hyphen only where the line breaks, and a zero-width space (U+200B) in codes and
URLs, after their punctuation and every few characters. Words up to
``MAX_UNBROKEN`` characters and codes up to ``MAX_UNBROKEN_CODE`` (tracking numbers,
order ids, e-mail addresses, which customers copy) are left as they are; links keep
their exact ``href``.

Only text between tags in ``<body>`` changes: never a tag, an attribute or the
head (title, stylesheet). Jinja escapes ``<`` and ``>`` in every value, so what
lies between two tags in the body is text. Doing it on the rendered HTML, not with
a filter in each template, reaches the URL that a translated sentence shows as its
own link text (one placeholder, in the ``href`` and in the text), and a new
template needs nothing. The plain-text part is left as it is.
"""

from __future__ import annotations

import re

#: Words of letters (characters, an entity counting as one) longer than this get break opportunities.
MAX_UNBROKEN = 20
#: Codes (tracking and order numbers, e-mail addresses, URLs) longer than this get them. Customers copy
#: these, and a copied zero-width space breaks a tracking form or a To: field, so only a code that cannot
#: fit a phone's line (about 36 characters at 375 px) is broken.
MAX_UNBROKEN_CODE = 34
#: At most this many characters between two break opportunities of a long run.
CHUNK = 10
SOFT_HYPHEN = "\u00ad"
ZERO_WIDTH_SPACE = "\u200b"

_BODY = re.compile(r"<body\b")
_TAG = re.compile(r"(<[^>]*>)")
# Between runs: whitespace (no-break spaces included, as characters or entities), an existing break
# opportunity (hyphen, soft hyphen, zero-width space) or the preheader's invisible padding.
_SEPARATOR = re.compile(r"(\s+|[\-\u00ad\u200b]|&nbsp;|&zwnj;|&#847;)")
_TOKEN = re.compile(r"&#?\w+;|.", re.DOTALL)
# In codes and URLs, a break reads best after these.
_BREAK_AFTER = frozenset("/?&=_@.:,;+~#|")
_BREAK_AFTER_ENTITIES = frozenset({"&amp;", "&#38;"})


def break_long_words(html: str) -> str:
    """``html`` with break opportunities in the long runs of its body's text.

    Most texts between two tags are short words and are passed over after a plain split: an
    e-mail costs a few tens of microseconds.
    """
    body = _BODY.search(html)
    if body is None:
        return html
    start = body.start()
    parts = _TAG.split(html[start:])
    for n in range(0, len(parts), 2):  # even: text, odd: a tag
        text = parts[n]
        if len(text) > MAX_UNBROKEN and any(len(word) > MAX_UNBROKEN for word in text.split()):
            parts[n] = breakable(text)
    return html[:start] + "".join(parts)


def breakable(text: str) -> str:
    """``text`` (plain or HTML-escaped) with break opportunities in its runs longer than ``MAX_UNBROKEN``."""
    parts = _SEPARATOR.split(text)
    for n in range(0, len(parts), 2):  # even: a run, odd: what separates runs
        if len(parts[n]) > MAX_UNBROKEN:
            parts[n] = _run(parts[n])
    return "".join(parts)


def _run(run: str) -> str:
    tokens = _TOKEN.findall(run)
    if len(tokens) <= MAX_UNBROKEN:
        return run
    if all(t.isalpha() for t in tokens):
        return _hyphenated(tokens)
    if len(tokens) <= MAX_UNBROKEN_CODE:
        return run
    pieces: list[str] = []
    since_break = 0
    for n, token in enumerate(tokens):
        pieces.append(token)
        since_break += 1
        last = n == len(tokens) - 1
        if not last and (token in _BREAK_AFTER or token in _BREAK_AFTER_ENTITIES or since_break >= CHUNK):
            pieces.append(ZERO_WIDTH_SPACE)
            since_break = 0
    return "".join(pieces)


def _hyphenated(tokens: list[str]) -> str:
    """A word of letters: a soft hyphen every ``CHUNK`` letters, never leaving fewer than three on a line."""
    pieces: list[str] = []
    for n, token in enumerate(tokens):
        if n and n % CHUNK == 0 and len(tokens) - n >= 3:
            pieces.append(SOFT_HYPHEN)
        pieces.append(token)
    return "".join(pieces)
