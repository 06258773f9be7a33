"""Break opportunities in long runs of an e-mail's text: where they go, and where they never go."""

from __future__ import annotations

import html
import re

import pytest

from consumers.deliver.preview import SAMPLES, sample_notification
from consumers.deliver.rendering import Renderer
from consumers.deliver.word_breaks import (
    CHUNK,
    MAX_UNBROKEN,
    MAX_UNBROKEN_CODE,
    SOFT_HYPHEN,
    ZERO_WIDTH_SPACE,
    break_long_words,
    breakable,
)
from consumers.notification import Template
from ordernotify.config import Settings

LONG_WORD = "Donaudampfschifffahrtsgesellschaftskapitänsmützenaufbewahrungsbox"
TRACKING = "TRKSHIP27F3A9C0D4E5B6A7F3A9C0D4E5B6A7F3A9C0D"
URL = "https://tracking.example/track?number=TRKSHIP27F3A9C0D4E5&amp;lang=auto"
MARKS = re.compile(f"[{SOFT_HYPHEN}{ZERO_WIDTH_SPACE}]")


def _page(text: str, href: str = "https://shop.example/") -> str:
    return (f'<html><head><title>{text}</title><style>.a {{ color: red; }}</style></head>'
            f'<body class="body"><p class="p">{text} <a class="link" href="{href}">{text}</a></p></body></html>')


def _longest_unbroken(text: str) -> int:
    return max(len(run) for run in re.split(rf"[\s\-{SOFT_HYPHEN}{ZERO_WIDTH_SPACE}]", text))


@pytest.mark.parametrize("text", [
    "100-4711",                      # an order number
    "12\u00a0345,99\u00a0zł",        # a price: no-break spaces, never split
    "Bestellnummer",                 # an ordinary long word
    "JJD0001234567890123",           # a tracking number of 19 characters
    "dishwasher-safe, speckled oatmeal glaze",
    "a" * MAX_UNBROKEN,
])
def test_short_runs_stay_as_they_are(text: str) -> None:
    assert breakable(text) == text


@pytest.mark.parametrize(("text", "mark"), [
    (LONG_WORD, SOFT_HYPHEN),        # letters: a hyphen shows where the line breaks
    (TRACKING, ZERO_WIDTH_SPACE),    # a code: nothing shows
    (URL, ZERO_WIDTH_SPACE),
    ("&lt;script&gt;alert(1)&lt;/script&gt;&lt;b&gt;bold&lt;/b&gt;", ZERO_WIDTH_SPACE),
])
def test_long_runs_get_invisible_break_opportunities_every_few_characters(text: str, mark: str) -> None:
    broken = breakable(text)
    assert MARKS.sub("", broken) == text
    assert mark in broken and set(MARKS.findall(broken)) == {mark}
    pieces = re.split(f"[{SOFT_HYPHEN}{ZERO_WIDTH_SPACE}]", broken)
    # An entity (&amp;, &lt;) counts as one character and is never cut.
    assert all(len(re.sub(r"&#?\w+;", "e", piece)) <= CHUNK for piece in pieces), pieces
    assert all(not re.search(r"&#?\w*$", piece) for piece in pieces[:-1]), pieces


def test_urls_break_after_their_punctuation() -> None:
    broken = breakable(URL)
    for after in ("https:", "//", "tracking.", "example/", "track?", "number=", "&amp;", "lang="):
        assert after + ZERO_WIDTH_SPACE in broken or after[:-1] + ZERO_WIDTH_SPACE + after[-1:] in broken, after


def test_only_the_body_text_changes_never_a_tag_attribute_title_or_stylesheet() -> None:
    page = _page(LONG_WORD, href=f"https://shop.example/{TRACKING}")
    broken = break_long_words(page)
    assert MARKS.sub("", broken) == page
    head, body = broken.split("<body", 1)
    assert head == page.split("<body", 1)[0]
    assert f'href="https://shop.example/{TRACKING}"' in body
    assert body.count(SOFT_HYPHEN) == 2 * (len(LONG_WORD) // CHUNK)


def test_the_preheader_padding_is_left_alone() -> None:
    filler = "&#847;&zwnj;&nbsp;" * 30
    page = f'<html><body><div class="preheader">Your order is ready.{filler}</div></body></html>'
    assert break_long_words(page) == page


def test_html_without_a_body_is_returned_as_it_is() -> None:
    assert break_long_words(f"<p>{LONG_WORD}</p>") == f"<p>{LONG_WORD}</p>"


@pytest.mark.parametrize("template", list(Template))
def test_rendered_long_names_break_in_the_html_and_stay_whole_in_the_text(template: Template) -> None:
    sample = next(s for s in SAMPLES if s.template is template and s.case == "long-names")
    email = Renderer(Settings()).render(sample_notification(sample, "en"))
    body = email.html.split("<body", 1)[1].split(">", 1)[1]
    visible = re.sub(r'<div class="preheader".*?</div>', "", body, flags=re.DOTALL)
    text_of_body = html.unescape(re.sub(r"<[^>]+>", " ", visible))
    assert LONG_WORD[:CHUNK] in text_of_body
    assert _longest_unbroken(text_of_body) <= MAX_UNBROKEN_CODE
    assert LONG_WORD in MARKS.sub("", email.html) and LONG_WORD in email.text
    assert not MARKS.search(email.text)


@pytest.mark.parametrize("code", ["9400100000000000000000",  # a USPS tracking number, 22 digits
                                  "SHIP2X7F3A9C0D4E5B6A7F3A9C0D4E5B6A7F3A9C0D",  # 42: longer than a phone line
                                  "customer.service@shop.example"])
def test_codes_customers_copy_stay_whole_unless_longer_than_a_phone_line(code: str) -> None:
    broken = breakable(code)
    if len(code) <= MAX_UNBROKEN_CODE:
        assert broken == code  # a copied zero-width space breaks a tracking form or a To: field
    else:
        assert broken != code and broken.replace("\u200b", "") == code
