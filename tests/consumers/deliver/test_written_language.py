"""One language per e-mail: the words, the dates, the numbers, ``lang`` and Content-Language all agree.

A customer whose language has no catalog reads the shop's default locale throughout (money keeps
its currency), never English sentences around dates in their own language.
"""

from __future__ import annotations

import email
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from email import policy
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from babel import Locale
from babel.dates import format_date, format_time, get_month_names

from consumers.deliver.composing import render_mail
from consumers.deliver.rendering import Renderer
from consumers.notification import Notification, Template
from ordernotify.config import Settings
from schemas.events import DateRange, DeliveryProblemKind, OrderEvent
from tests import factories as f

DAY = date(2030, 12, 4)
LATER = date(2030, 12, 9)
AT = datetime(2030, 12, 9, 12, 0, tzinfo=UTC)
ZONE = ZoneInfo("Europe/Berlin")  # the customers' time zone below
Make = Callable[..., tuple[OrderEvent, ...]]


def _one(make: Callable[..., OrderEvent], **fields: Any) -> Make:
    return lambda **c: (make(**fields, **c),)


def _cancelled_and_refunded(**c: Any) -> tuple[OrderEvent, ...]:
    """The cancellation e-mail tells of the refund that came with it, and when the money arrives."""
    return f.cancelled_event(**c), f.refund_event(expected_by=DAY, **c)


# Every date the templates show, on December days: month names are the clearest trace of a language.
# out_for_delivery shows times only (its window), checked by TIMES below.
CASES: list[tuple[Template, Make]] = [
    (Template.ORDER_PLACED, _one(f.placed_event, delivery_estimate=DateRange(DAY, LATER))),
    (Template.OUT_OF_STOCK, _one(f.out_of_stock_event, items=(f.out_of_stock_item(restock_estimate=LATER),),
                                 respond_by=DAY)),
    (Template.PRICE_ERROR, _one(f.price_error_event, respond_by=DAY)),
    (Template.SHIPPED, _one(f.shipped_event, estimated_delivery=DAY)),
    (Template.DELIVERED, _one(f.delivered_event, delivered_at=AT)),
    (Template.ORDER_CANCELLED, _cancelled_and_refunded),
    (Template.REFUND_ISSUED, _one(f.refund_event, expected_by=DAY)),
    (Template.OUT_FOR_DELIVERY, _one(f.out_for_delivery_event, window_start=AT, window_end=AT + timedelta(hours=3))),
    (Template.DELIVERY_PROBLEM, _one(f.delivery_problem_event, pickup_by=DAY)),
    (Template.DELIVERY_PROBLEM, _one(f.delivery_problem_event, kind=DeliveryProblemKind.DELAYED,
                                     pickup_location=None, pickup_by=None, reschedule_url=None, new_estimate=DAY)),
]
IDS = [*(t.value for t, _ in CASES[:-2]), "delivery_problem-pickup_by", "delivery_problem-new_estimate"]
#: the window's ends as the customer reads them (13:00 and 16:00 in Berlin)
TIMES = (AT.astimezone(ZONE), (AT + timedelta(hours=3)).astimezone(ZONE))
#: the templates whose cases show DAY as a long date (the others: a date range, a moment, a time window)
SHOWS_DAY = frozenset(Template) - {Template.ORDER_PLACED, Template.DELIVERED, Template.OUT_FOR_DELIVERY}


def _written(settings: Settings, template: Template, make: Make,
             locale: str) -> tuple[str, str, email.message.EmailMessage]:
    events = make(customer=f.make_customer(locale=locale, time_zone="Europe/Berlin"))
    mail = render_mail(Renderer(settings), Notification(template, events), settings)
    message = email.message_from_bytes(mail.data, policy=policy.default)
    assert isinstance(message, email.message.EmailMessage)
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    return str(text.get_content()), str(html.get_content()), message


def _assert_dates_in(language: str, template: Template, text: str, month: tuple[str, ...]) -> None:
    """The template's dates (a December month name) or, for out_for_delivery, its times, as ``language``
    writes them."""
    if template is Template.OUT_FOR_DELIVERY:
        for moment in TIMES:
            assert format_time(moment, "short", locale=language) in text, (language, text)
    else:
        assert any(word in text for word in month), (month, text)


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
        template: Template, make: Make, locale: str) -> None:
    text, html, message = _written(Settings(), template, make, locale)
    assert message["Content-Language"] == "en"
    assert 'lang="en"' in html and 'dir="ltr"' in html
    for word in _month_words(Locale.parse(locale, sep="-").language, "en"):
        assert not _has_word(text, word) and not _has_word(html, word), (locale, word)
    _assert_dates_in("en", template, text, ("December", "Dec"))
    language = Locale.parse(locale, sep="-").language
    if template in SHOWS_DAY:  # "December 4, 2030", not "4 december 2030" (Swedish's month is spelled alike)
        assert format_date(DAY, "long", locale="en") in text and format_date(DAY, "long", locale="en") in html
        assert format_date(DAY, "long", locale=language) not in text + html
    if template is Template.OUT_FOR_DELIVERY:  # 1:00 PM, not 13:00 as Swedish and Portuguese write it
        assert "13:00" not in text and "13:00" not in html
    assert "12,99" not in text and "4,99" not in text  # no decimal comma in English


@pytest.mark.parametrize(("template", "make"), CASES, ids=IDS)
def test_a_german_shop_writes_such_customers_in_german_throughout(template: Template, make: Make) -> None:
    text, html, message = _written(Settings(default_locale="de-DE"), template, make, "sv-SE")
    assert message["Content-Language"] == "de-DE"
    assert 'lang="de-DE"' in html
    assert "Ihre Bestellung 1234" in str(message["Subject"])
    _assert_dates_in("de", template, text, ("Dezember", "Dez"))
    assert not _has_word(text, "december") and not _has_word(html, "december")


@pytest.mark.parametrize(("template", "make"), CASES, ids=IDS)
def test_a_german_customer_reads_german_throughout(template: Template, make: Make) -> None:
    text, html, message = _written(Settings(), template, make, "de-DE")
    assert message["Content-Language"] == "de-DE"
    assert 'lang="de-DE"' in html
    assert str(message["Subject"]).startswith("Ihre Bestellung 1234")
    _assert_dates_in("de", template, text, ("Dezember", "Dez"))
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
