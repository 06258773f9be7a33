"""One language per e-mail: the words, the dates, the numbers, ``lang`` and Content-Language all agree.

A customer whose language has no catalog reads the shop's default locale throughout (money keeps
its currency), never English sentences around dates in their own language.
"""

from __future__ import annotations

import email
import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from email import policy

import pytest
from babel import Locale
from babel.dates import format_date, get_month_names

from consumers.deliver.composing import render_mail
from consumers.deliver.rendering import Renderer
from consumers.notification import Notification, Template
from ordernotify.config import Settings
from schemas.events import DateRange, OrderEvent
from tests import factories as f

DAY = date(2030, 12, 4)
LATER = date(2030, 12, 9)
AT = datetime(2030, 12, 9, 12, 0, tzinfo=UTC)

# Every date the templates show, on December days: month names are the clearest trace of a language.
CASES: list[tuple[Template, Callable[..., OrderEvent]]] = [
    (Template.ORDER_PLACED, lambda **c: f.placed_event(delivery_estimate=DateRange(DAY, LATER), **c)),
    (Template.OUT_OF_STOCK, lambda **c: f.out_of_stock_event(
        items=(f.out_of_stock_item(restock_estimate=LATER),), respond_by=DAY, **c)),
    (Template.PRICE_ERROR, lambda **c: f.price_error_event(respond_by=DAY, **c)),
    (Template.SHIPPED, lambda **c: f.shipped_event(estimated_delivery=DAY, **c)),
    (Template.DELIVERED, lambda **c: f.delivered_event(delivered_at=AT, **c)),
]
IDS = [t.value for t, _ in CASES]


def _written(settings: Settings, template: Template, make: Callable[..., OrderEvent],
             locale: str) -> tuple[str, str, email.message.EmailMessage]:
    event = make(customer=f.make_customer(locale=locale, time_zone="Europe/Berlin"))
    mail = render_mail(Renderer(settings), Notification(template, (event,)), settings)
    message = email.message_from_bytes(mail.data, policy=policy.default)
    assert isinstance(message, email.message.EmailMessage)
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    return str(text.get_content()), str(html.get_content()), message


def _month_words(language: str, other: str) -> set[str]:
    """December in ``language`` (wide and abbreviated), where it is not spelled as in ``other``."""
    words = set()
    for width in ("wide", "abbreviated"):
        word = get_month_names(width, locale=language)[12].rstrip(".")
        if word.lower() != get_month_names(width, locale=other)[12].rstrip(".").lower():
            words.add(word)
    return words


def _has_word(text: str, word: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(word)}(?!\w)", text, re.IGNORECASE) is not None


@pytest.mark.parametrize("locale", ["sv-SE", "pt-BR"])
@pytest.mark.parametrize(("template", "make"), CASES, ids=IDS)
def test_a_language_without_catalog_reads_the_default_locale_throughout(
        template: Template, make: Callable[..., OrderEvent], locale: str) -> None:
    text, html, message = _written(Settings(), template, make, locale)
    assert message["Content-Language"] == "en"
    assert 'lang="en"' in html and 'dir="ltr"' in html
    for word in _month_words(Locale.parse(locale, sep="-").language, "en"):
        assert not _has_word(text, word) and not _has_word(html, word), (locale, word)
    assert "December" in text or "Dec" in text
    assert "12,99" not in text and "4,99" not in text  # no decimal comma in English


@pytest.mark.parametrize(("template", "make"), CASES, ids=IDS)
def test_a_german_shop_writes_such_customers_in_german_throughout(
        template: Template, make: Callable[..., OrderEvent]) -> None:
    text, html, message = _written(Settings(default_locale="de-DE"), template, make, "sv-SE")
    assert message["Content-Language"] == "de-DE"
    assert 'lang="de-DE"' in html
    assert "Ihre Bestellung 1234" in str(message["Subject"])
    assert "Dezember" in text or "Dez" in text
    assert not _has_word(text, "december") and not _has_word(html, "december")


@pytest.mark.parametrize(("template", "make"), CASES, ids=IDS)
def test_a_german_customer_reads_german_throughout(template: Template, make: Callable[..., OrderEvent]) -> None:
    text, html, message = _written(Settings(), template, make, "de-DE")
    assert message["Content-Language"] == "de-DE"
    assert 'lang="de-DE"' in html
    assert str(message["Subject"]).startswith("Ihre Bestellung 1234")
    assert "Dezember" in text or "Dez" in text
    assert not _has_word(text, "December") and not _has_word(text, "Dec")
    assert not _has_word(text, "Your order") and "Hallo Ada Lovelace," in text


def test_money_keeps_its_currency_in_the_locale_the_email_is_written_in() -> None:
    event = f.placed_event(items=(f.line_item(price_minor=1299, currency="PLN"),),
                           customer=f.make_customer(locale="sv-SE"))
    rendered = Renderer(Settings()).render(Notification.for_event(event))
    assert "PLN12.99" in rendered.text and "12,99" not in rendered.text
    assert rendered.locale == "en"


def test_dates_follow_the_locale_the_words_are_in() -> None:
    event = f.shipped_event(estimated_delivery=DAY, customer=f.make_customer(locale="sv-SE"))
    rendered = Renderer(Settings()).render(Notification.for_event(event))
    assert format_date(DAY, "long", locale="en") in rendered.text
    assert format_date(DAY, "long", locale="sv") not in rendered.text
