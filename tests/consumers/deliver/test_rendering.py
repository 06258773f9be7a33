"""Templates rendered for real: every template, single and coalesced events, locales, escaping, failures."""

from __future__ import annotations

import dataclasses
import html
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from html.parser import HTMLParser
from pathlib import Path

import css_inline
import jinja2
import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import write_po

from consumers.deliver.branding import DARK_BACKGROUND, ShopBranding, contrast_ratio
from consumers.deliver.rendering import RenderedEmail, Renderer, with_query
from consumers.exceptions import RenderError
from consumers.notification import Notification, Template
from ordernotify.config import Settings
from ordernotify.errors import ConfigError
from schemas.events import CancelReason, DeliveryProblemKind, OrderEvent, PriceResolution, StockOption, Substitute
from templates import TEMPLATE_DIR
from tests import factories as f

SETTINGS = Settings()
GERMAN = f.make_customer(locale="de-DE", time_zone="Europe/Berlin")
NBSP = "\xa0"


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer(SETTINGS)


def _render(renderer: Renderer, template: Template, events: list[OrderEvent]) -> RenderedEmail:
    return renderer.render(Notification(template, tuple(events)))


@dataclass(frozen=True)
class Case:
    id: str
    template: Template
    events: Callable[[], list[OrderEvent]]
    subject: tuple[str, ...] = ()
    both: tuple[str, ...] = ()  # in the HTML and in the plain text
    absent: tuple[str, ...] = field(default=())  # in neither


CASES = [
    Case(
        "placed-en", Template.ORDER_PLACED,
        lambda: [f.placed_event(items=(f.line_item(), f.line_item("SKU-2", "Teapot", 2, 2450)))],
        subject=("1234", "confirmed"),
        both=("Blue mug", "Teapot", "€12.99", "€49.00", "€24.50", "€66.98", "12 St James", "United Kingdom",
              "https://shop.example/orders/1234", "help@shop.example"),
    ),
    Case(
        "placed-de", Template.ORDER_PLACED, lambda: [f.placed_event(customer=GERMAN)],
        both=(f"12,99{NBSP}€", f"17,98{NBSP}€", "Vereinigtes Königreich"),
        absent=("€12.99",),
    ),
    Case(
        "placed-several-events", Template.ORDER_PLACED,
        lambda: [f.placed_event(), f.placed_event(items=(f.line_item("SKU-7", "Kettle", 1, 3000),))],
        both=("Blue mug", "Kettle", "€30.00"),
    ),
    Case(
        "out-of-stock-one", Template.OUT_OF_STOCK, lambda: [f.out_of_stock_event()],
        subject=("1234", "out of stock"),
        both=("Blue mug", "Green mug", "€13.99", "January 15, 2030", "choice=wait", "choice=substitute",
              "choice=cancel", "back in stock"),
    ),
    Case(
        "out-of-stock-merged", Template.OUT_OF_STOCK,
        lambda: [
            f.out_of_stock_event(),
            f.out_of_stock_event(
                items=(f.out_of_stock_item("SKU-9", "Kettle", restock_estimate=None),),
                options=(StockOption.WAIT_FOR_RESTOCK, StockOption.CANCEL_ITEM),
                default_action=StockOption.CANCEL_ITEM, respond_by=None,
            ),
        ],
        subject=("items are out of stock",),
        both=("Blue mug", "Kettle", "sku=SKU-9", "sku=SKU-1", "do not know yet", "refund you €12.99"),
    ),
    Case(
        "price-error-one", Template.PRICE_ERROR, lambda: [f.price_error_event()],
        subject=("1234", "price"),
        both=("Blue mug", "€1.29", "€12.99", "our mistake", "choice=accept_price", "choice=cancel"),
        absent=("your mistake", "you made"),
    ),
    Case(
        "price-error-several", Template.PRICE_ERROR,
        lambda: [
            f.price_error_event(),
            f.price_error_event(item=f.parcel_item("SKU-2", "Teapot"), resolution=PriceResolution.HONOURED),
            f.price_error_event(item=f.parcel_item("SKU-3", "Cup"), resolution=PriceResolution.CANCELLED_REFUNDED),
        ],
        both=("Blue mug", "Teapot", "Cup", "You pay the price you saw", "cancelled this item and refunded"),
    ),
    Case(
        "shipped-one", Template.SHIPPED,
        lambda: [f.shipped_event(remaining_items=(f.parcel_item("SKU-2", "Teapot"),))],
        subject=("1234", "shipped"),
        both=("DHL", "TRKSHIP1", "https://tracking.example/TRKSHIP1", "Blue mug", "Still to come", "Teapot"),
    ),
    Case(
        "shipped-two-parcels", Template.SHIPPED,
        lambda: [
            f.shipped_event(remaining_items=(f.parcel_item("SKU-2", "Teapot"),)),
            f.shipped_event(shipment_id="SHIP-2", carrier="UPS", items=(f.parcel_item("SKU-2", "Teapot"),)),
        ],
        both=("DHL", "UPS", "https://tracking.example/TRKSHIP1", "https://tracking.example/TRKSHIP2",
              "Parcel 2 of 2"),
        absent=("Still to come",),
    ),
    Case(
        "delivered-one", Template.DELIVERED, lambda: [f.delivered_event()],
        subject=("1234", "delivered"),
        both=("With your neighbour at number 14", "Blue mug", "Thank you", "review", "return"),
        absent=("Still to come",),
    ),
    Case(
        "delivered-with-merged-shipping", Template.DELIVERED,
        lambda: [
            f.shipped_event(),
            f.shipped_event(shipment_id="SHIP-2", carrier="UPS", items=(f.parcel_item("SKU-2", "Teapot"),)),
            f.delivered_event(),
            f.delivered_event(shipment_id="SHIP-2", items=(f.parcel_item("SKU-2", "Teapot"),), left_at=None),
        ],
        both=("Blue mug", "Teapot", "With your neighbour"),
        absent=("on its way", "TRKSHIP1", "Still to come", "Good news"),
    ),
    Case(
        "delivered-part", Template.DELIVERED,
        lambda: [
            f.shipped_event(),
            f.shipped_event(shipment_id="SHIP-2", carrier="UPS", items=(f.parcel_item("SKU-2", "Teapot"),)),
            f.delivered_event(),
        ],
        both=("Part of your order", "Still to come", "https://tracking.example/TRKSHIP2"),
        absent=("TRKSHIP1",),
    ),
    Case(
        "cancelled-whole-with-refund", Template.ORDER_CANCELLED,
        lambda: [f.cancelled_event(refund=f.money(3097)),
                 f.refund_event(amount=f.money(3097), payment_method="Visa ending 4242")],
        subject=("cancelled",),
        both=("has been cancelled", "at your request", "Refund: €30.97", "Visa ending 4242"),
        absent=("You will get", "not affected", "You have not been charged"),
    ),
    Case(
        "cancelled-items-refund-to-come", Template.ORDER_CANCELLED,
        lambda: [f.cancelled_event(items=(f.parcel_item("SKU-2", "Teapot"),), reason=CancelReason.OUT_OF_STOCK,
                                   refund=f.money(2450))],
        subject=("items cancelled",),
        both=("Teapot", "could not get what you ordered", "not affected",
              "You will get €24.50 back, by the payment method you used"),
        # true whether or not the refund was already told in an e-mail of its own
        absent=("at your request", "We will e-mail you"),
    ),
    Case(
        "refund-one", Template.REFUND_ISSUED, lambda: [f.refund_event(shipping_refunded=True)],
        subject=("refund of €12.99",),
        both=("We have refunded €12.99", "Visa ending 4242", "The shipping cost is included", "Blue mug"),
    ),
    Case(
        "refund-two", Template.REFUND_ISSUED,
        lambda: [f.refund_event(), f.refund_event(refund_id="RF-2", amount=f.money(500), payment_method=None)],
        both=("We have refunded €12.99", "We have refunded €5.00"),
    ),
    Case(
        "out-for-delivery-window", Template.OUT_FOR_DELIVERY,
        lambda: [f.out_for_delivery_event(customer=f.make_customer(time_zone="UTC"))],
        subject=("arriving today",),
        both=("DHL is delivering your parcel today, between 9:00\u202fAM and 12:00\u202fPM",
              "https://tracking.example/TRKSHIP1"),
        absent=("Still to come",),
    ),
    Case(
        "out-for-delivery-and-another-shipped", Template.OUT_FOR_DELIVERY,
        lambda: [f.shipped_event(shipment_id="SHIP-2", carrier="UPS"), f.out_for_delivery_event(window_start=None,
                                                                                               window_end=None)],
        both=("DHL is delivering your parcel today.", "Still to come", "UPS"),
    ),
    Case(
        "problem-attempted", Template.DELIVERY_PROBLEM, lambda: [f.delivery_problem_event()],
        subject=("we missed you",),
        both=("nobody was there", "DHL Packstation 112", "Choose another delivery day",
              "https://tracking.example/TRKSHIP1/reschedule"),
    ),
    Case(
        "problem-delayed-and-lost", Template.DELIVERY_PROBLEM,
        lambda: [f.delivery_problem_event(kind=DeliveryProblemKind.DELAYED, new_estimate=None),
                 f.delivery_problem_event(shipment_id="SHIP-2", kind=DeliveryProblemKind.LOST)],
        both=("running late", "do not have a new date yet", "parcel is lost", "Tell us what you would like"),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_template_shows_the_facts(renderer: Renderer, case: Case) -> None:
    email = _render(renderer, case.template, case.events())
    shown_html = html.unescape(email.html)  # the inliner writes U+00A0 as &nbsp;
    for fact in case.subject:
        assert fact in email.subject
    for fact in case.both:
        assert fact in shown_html, fact
        assert fact in email.text, fact
    for fact in case.absent:
        assert fact not in shown_html, fact
        assert fact not in email.text, fact
    assert "1234" in email.subject and "\n" not in email.subject and "\r" not in email.subject


def test_every_template_has_a_case() -> None:
    assert {c.template for c in CASES} == set(Template)
    for template in Template:
        counts = {len(c.events()) for c in CASES if c.template is template}
        assert 1 in counts and max(counts) > 1, template


def test_a_refund_of_an_amount_alone_tells_the_amount_and_lists_nothing(renderer: Renderer) -> None:
    """Goodwill, or a price corrected after the sale: no items, no shipping, only the money."""
    email = _render(renderer, Template.REFUND_ISSUED, [f.refund_event(items=(), shipping_refunded=False)])
    assert "We have refunded €12.99 for your order 1234." in email.text
    assert "refund of €12.99" in email.subject
    assert " x " not in email.text.split("We have refunded")[1].split("Depending on your bank")[0]
    assert "shipping cost" not in email.text and "shipping cost" not in email.html


def test_order_url_of_the_event_is_the_base_of_every_action(renderer: Renderer) -> None:
    event = f.out_of_stock_event(order_url="https://my.shop.example/o/77?token=a b")
    email = _render(renderer, Template.OUT_OF_STOCK, [event])
    assert "https://my.shop.example/o/77?token=a+b&choice=wait&sku=SKU-1" in email.text
    assert "https://my.shop.example/o/77?token=a+b&amp;choice=wait&amp;sku=SKU-1" in email.html
    assert "https://shop.example/orders/" not in email.text


@pytest.mark.parametrize(
    ("url", "params", "expected"),
    [
        ("https://s.example/orders/1", {"choice": "wait", "sku": "A&B 1"},
         "https://s.example/orders/1?choice=wait&sku=A%26B+1"),
        ("https://s.example/o?t=1#top", {"choice": "cancel"}, "https://s.example/o?t=1&choice=cancel#top"),
    ],
)
def test_with_query_encodes_and_keeps_the_existing_query(url: str, params: dict[str, str], expected: str) -> None:
    assert with_query(url, params) == expected


ESCAPE_CASES: list[tuple[Template, Callable[[str], OrderEvent]]] = [
    (Template.ORDER_PLACED, lambda name: f.placed_event(items=(f.line_item(name=name),))),
    (Template.OUT_OF_STOCK, lambda name: f.out_of_stock_event(
        items=(f.out_of_stock_item(name=name, substitute=Substitute("S", name, f.money(100))),))),
    (Template.PRICE_ERROR, lambda name: f.price_error_event(item=f.parcel_item(name=name))),
    (Template.SHIPPED, lambda name: f.shipped_event(items=(f.parcel_item(name=name),), carrier=name)),
    (Template.DELIVERED, lambda name: f.delivered_event(items=(f.parcel_item(name=name),), left_at=name)),
    (Template.ORDER_CANCELLED, lambda name: f.cancelled_event(items=(f.parcel_item(name=name),))),
    (Template.REFUND_ISSUED, lambda name: f.refund_event(items=(f.parcel_item(name=name),), payment_method=name)),
    (Template.OUT_FOR_DELIVERY, lambda name: f.out_for_delivery_event(carrier=name)),
    (Template.DELIVERY_PROBLEM, lambda name: f.delivery_problem_event(carrier=name, pickup_location=name)),
]


@pytest.mark.parametrize(("template", "make"), ESCAPE_CASES, ids=[t.value for t, _ in ESCAPE_CASES])
def test_html_escapes_names_and_never_evaluates_them(renderer: Renderer, template: Template,
                                                     make: Callable[[str], OrderEvent]) -> None:
    customer = f.make_customer(display_name="<i>Mallory</i>")
    # 111111*7 = 777777 cannot turn up in a date or a price the way 7*7 = 49 did (a time of 4:49 PM)
    event = make("<b>x</b> {{ 111111*7 }} {% if 1 %}evaluated{% endif %}")
    event = OrderEvent(event.event_id, event.event_type, event.occurred_at, event.order_id, customer, event.payload)
    email = _render(renderer, template, [event])
    assert "&lt;b&gt;x&lt;/b&gt; {{ 111111*7 }} {% if 1 %}evaluated{% endif %}" in email.html
    assert "<b>x</b>" not in email.html and "<i>Mallory</i>" not in email.html
    assert "&lt;i&gt;Mallory&lt;/i&gt;" in email.html
    assert "<b>x</b> {{ 111111*7 }}" in email.text  # plain text is not HTML: shown as written
    assert "777777" not in email.text and "777777" not in email.html


@pytest.mark.parametrize(
    ("locale", "expected_locale", "money", "words"),
    [
        ("en", "en", "€12.99", "Thank you for your order"),
        ("de-DE", "de-DE", f"12,99{NBSP}€", "Vielen Dank für Ihre Bestellung"),
        ("de_DE", "de-DE", f"12,99{NBSP}€", "Vielen Dank für Ihre Bestellung"),
        ("de-AT", "de-AT", f"€{NBSP}12,99", "Vielen Dank für Ihre Bestellung"),
        ("pl-PL", "pl-PL", f"12,99{NBSP}€", "Dziękujemy za zamówienie"),
        ("pl", "pl", f"12,99{NBSP}€", "Dziękujemy za zamówienie"),
        ("fr-FR", "fr-FR", f"12,99{NBSP}€", "Merci pour votre commande"),
        ("fr-CA", "fr-CA", f"12,99{NBSP}€", "Merci pour votre commande"),
        ("es-ES", "es-ES", f"12,99{NBSP}€", "Gracias por su pedido"),
        ("it-IT", "it-IT", f"12,99{NBSP}€", "Grazie per il Suo ordine"),
        ("nl-NL", "nl-NL", f"€{NBSP}12,99", "Bedankt voor uw bestelling"),
        # No catalog: the default locale's words and formats, never a mix.
        ("sv-SE", "en", "€12.99", "Thank you for your order"),
        # Not a locale at all: the default locale for everything.
        ("xx-YY", "en", "€12.99", "Thank you for your order"),
        ("not a locale", "en", "€12.99", "Thank you for your order"),
    ],
)
def test_locale_of_the_customer_or_the_default(renderer: Renderer, locale: str, expected_locale: str,
                                               money: str, words: str) -> None:
    email = _render(renderer, Template.ORDER_PLACED, [f.placed_event(customer=f.make_customer(locale=locale))])
    assert email.locale == expected_locale
    assert f'lang="{expected_locale}"' in email.html and 'dir="ltr"' in email.html
    assert money in email.text
    assert words in email.text and words in html.unescape(email.html)


def test_default_locale_setting_words_the_emails_of_locales_without_catalog() -> None:
    german_shop = Renderer(Settings(default_locale="de-DE"))
    swedish = _render(german_shop, Template.SHIPPED, [f.shipped_event(customer=f.make_customer(locale="sv-SE"))])
    unknown = _render(german_shop, Template.SHIPPED, [f.shipped_event(customer=f.make_customer(locale="xx"))])
    english = _render(german_shop, Template.SHIPPED, [f.shipped_event(customer=f.make_customer(locale="en-GB"))])
    assert swedish.subject == unknown.subject == "Ihre Bestellung 1234: versandt"
    assert (swedish.locale, unknown.locale, english.locale) == ("de-DE", "de-DE", "en-GB")
    assert english.subject == "Your order 1234: shipped"  # English needs no catalog: it is the source language


def test_every_template_is_translated_in_every_catalog(renderer: Renderer) -> None:
    assert {"de", "pl", "fr", "es", "it", "nl"} <= set(renderer.languages)
    for template, make in ESCAPE_CASES:
        english = _render(renderer, template, [make("Blue mug")])
        for locale in set(renderer.languages) - {"en"}:
            event = dataclasses.replace(make("Blue mug"), customer=f.make_customer(locale=locale))
            translated = _render(renderer, template, [event])
            assert translated.subject != english.subject, (template, locale)
            english_lines = set(english.text.splitlines())
            # Item names, URLs and addresses stay as they are; no sentence may stay English.
            for line in translated.text.splitlines():
                if len(line) > 40 and "://" not in line and line != SETTINGS.footer_address:
                    assert line not in english_lines, (template, locale, line)


def test_locale_without_catalog_keeps_the_direction_of_the_words(renderer: Renderer) -> None:
    email = _render(renderer, Template.ORDER_PLACED, [f.placed_event(customer=f.make_customer(locale="ar-EG"))])
    assert 'lang="en"' in email.html and 'dir="ltr"' in email.html  # English words, read left to right
    assert "Thank you for your order" in email.text and "€12.99" in email.text  # and English figures


def test_right_to_left_catalog_sets_lang_and_dir(tmp_path: Path) -> None:
    root = _broken_templates(tmp_path, "shipped/subject.txt.j2",
                             "{% trans %}Your order {{ order_id }}: shipped{% endtrans %}")
    catalog = Catalog(locale="ar")
    catalog.add("Thank you for your order", "شكرًا لطلبك")
    po_file = root / "locale" / "ar" / "LC_MESSAGES" / "messages.po"
    po_file.parent.mkdir(parents=True)
    with po_file.open("wb") as fh:
        write_po(fh, catalog)
    email = Renderer(SETTINGS, template_dir=root).render(
        Notification.for_event(f.placed_event(customer=f.make_customer(locale="ar-EG"))))
    assert 'lang="ar-EG"' in email.html and 'dir="rtl"' in email.html
    assert "شكرًا لطلبك" in email.html
    assert email.subject == "Your order 1234: confirmed"  # untranslated messages fall back to English


@pytest.mark.parametrize(
    ("time_zone", "expected"),
    [("Europe/Berlin", "1:00\u202fPM"), ("America/New_York", "7:00\u202fAM"), ("Mars/Olympus_Mons", "12:00\u202fPM"),
     ("", "12:00\u202fPM")],
)
def test_delivery_time_in_the_customer_time_zone(renderer: Renderer, time_zone: str, expected: str) -> None:
    event = f.delivered_event(delivered_at=datetime(2030, 1, 15, 12, 0, tzinfo=UTC),
                              customer=f.make_customer(time_zone=time_zone))
    email = _render(renderer, Template.DELIVERED, [event])
    assert "January 15, 2030" in email.text and expected in email.text


def test_minor_units_follow_the_currency(renderer: Renderer) -> None:
    event = f.placed_event(items=(f.line_item(price_minor=1299, currency="JPY"),), shipping_cost=f.money(0, "JPY"))
    email = _render(renderer, Template.ORDER_PLACED, [event])
    assert "¥1,299" in email.text


def test_subject_is_one_line_even_if_the_order_id_is_not(renderer: Renderer) -> None:
    email = _render(renderer, Template.SHIPPED, [f.shipped_event(order_id="12\r\n34\u2028Bcc: x@evil.example")])
    assert "\r" not in email.subject and "\n" not in email.subject and "\u2028" not in email.subject
    assert email.subject == "Your order 12 34 Bcc: x@evil.example: shipped"


class _HtmlFacts(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.style_text = ""
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.style_text += data


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_html_is_inlined_and_accessible(renderer: Renderer, case: Case) -> None:
    email = _render(renderer, case.template, case.events())
    facts = _HtmlFacts()
    facts.feed(email.html)
    html_attrs = next(attrs for tag, attrs in facts.tags if tag == "html")
    assert html_attrs.get("lang") and html_attrs.get("dir") in ("ltr", "rtl")
    classed = [(tag, attrs) for tag, attrs in facts.tags if attrs.get("class")]
    assert classed, "the templates style by class"
    for tag, attrs in classed:
        assert attrs.get("style"), f"<{tag} class={attrs['class']!r}> depends on <style> alone"
    for _tag, attrs in (t for t in facts.tags if t[0] == "img"):
        assert attrs.get("alt") is not None
    assert "@media" in facts.style_text  # responsive rules kept, everything else inlined
    assert "max-width: 600px" in email.html
    assert any(tag == "a" and "button" in (attrs.get("class") or "") for tag, attrs in facts.tags)
    assert 'class="preheader"' in email.html


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_styles_inlined_once_are_what_css_inline_makes_of_the_whole_e_mail(renderer: Renderer, case: Case) -> None:
    """Styles are inlined per class attribute, once per shop (consumers/deliver/class_styles.py); every element must
    get the style css-inline gives it when it inlines the whole e-mail with the whole stylesheet."""
    ours = _render(renderer, case.template, case.events()).html
    bare = re.sub(r' style="[^"]*"', "", ours)
    bare = re.sub(r"<style>.*?</style>", lambda _: f"<style>{renderer.stylesheet}</style>", bare, flags=re.DOTALL)
    reference = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False).inline(bare)
    assert _styled_elements(ours) == _styled_elements(reference)
    assert _style_element(ours).split() == _style_element(reference).split()


def test_a_class_attribute_in_data_gets_no_style(renderer: Renderer) -> None:
    """Styles are added after ` class="..."`; in data, Jinja's escaping turns the quotes into &#34;."""
    name = 'Mug class="p" style="x"'
    email = _render(renderer, Template.ORDER_PLACED, [f.placed_event(items=(f.line_item(name=name),))])
    assert "Mug class=&#34;p&#34; style=&#34;x&#34;" in email.html
    assert email.html.count(' style="') == email.html.count(' class="')  # one per template class attribute


def _styled_elements(page: str) -> list[tuple[str, str | None, dict[str, str]]]:
    facts = _HtmlFacts()
    facts.feed(page)
    return [(tag, attrs.get("class"), _declarations(attrs.get("style") or "")) for tag, attrs in facts.tags
            if tag not in ("tbody", "style")]  # tbody: inserted by css-inline's parser; <style>: moved to the top


def _declarations(style: str) -> dict[str, str]:
    return {name.strip(): value.strip() for name, _, value in (d.partition(":") for d in style.split(";") if d.strip())}


def _style_element(page: str) -> str:
    facts = _HtmlFacts()
    facts.feed(page)
    return facts.style_text


def test_fifty_items_stay_below_gmail_clipping(renderer: Renderer) -> None:
    items = tuple(f.line_item(f"SKU-{i}", f"Product number {i} with a fairly long descriptive name", 2, 1999)
                  for i in range(50))
    email = _render(renderer, Template.ORDER_PLACED, [f.placed_event(items=items)])
    assert "Product number 49" in email.html
    assert len(email.html.encode()) < 102 * 1024


def test_plain_text_is_written_not_stripped_html(renderer: Renderer) -> None:
    email = _render(renderer, Template.SHIPPED, [f.shipped_event()])
    assert "<" not in email.text and "&amp;" not in email.text
    assert "Track your parcel: https://tracking.example/TRKSHIP1" in email.text
    assert "\n-- \n" in email.text  # signature separator: clients grey out the footer


def _broken_templates(tmp_path: Path, relative: str, source: str) -> Path:
    root = tmp_path / "templates"
    shutil.copytree(TEMPLATE_DIR, root, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    (root / relative).write_text(source, encoding="utf-8")
    return root


@pytest.mark.parametrize(
    ("relative", "source"),
    [
        ("shipped/subject.txt.j2", "Your order {{ order_id }}: {{ no_such_variable }}"),
        ("shipped/body.html.j2", '{% extends "base.html.j2" %}{% block content %}{{ parcels[0].nope }}{% endblock %}'),
        ("shipped/body.txt.j2", "{% if %}"),
        ("base.txt.j2", "{{ shop.name | no_such_filter }}"),
    ],
    ids=["undefined-variable", "undefined-attribute", "syntax-error", "unknown-filter"],
)
def test_template_errors_become_render_errors(tmp_path: Path, relative: str, source: str) -> None:
    renderer = Renderer(SETTINGS, template_dir=_broken_templates(tmp_path, relative, source))
    with pytest.raises(RenderError) as caught:
        renderer.render(Notification.for_event(f.shipped_event()))
    assert caught.value.reason == "render_failed"
    assert isinstance(caught.value.__cause__, jinja2.TemplateError)


def test_missing_template_is_a_render_error(tmp_path: Path) -> None:
    root = _broken_templates(tmp_path, "shipped/subject.txt.j2", "")
    (root / "shipped" / "subject.txt.j2").unlink()
    with pytest.raises(RenderError):
        Renderer(SETTINGS, template_dir=root).render(Notification.for_event(f.shipped_event()))


def test_data_the_formatters_cannot_handle_is_a_render_error(renderer: Renderer) -> None:
    event = f.delivered_event(delivered_at=date(2030, 1, 1))  # a date where a datetime belongs
    with pytest.raises(RenderError) as caught:
        renderer.render(Notification.for_event(event))
    assert caught.value.__cause__ is not None


def test_compiled_templates_are_reused(renderer: Renderer) -> None:
    british, unknown, swedish = (f.make_customer(locale=tag) for tag in ("en-GB", "xx-YY", "sv-SE"))
    renderer.render(Notification.for_event(f.placed_event(customer=british)))
    _wording, env = renderer._environment_for_locale["en_GB"]
    template = env.get_template("order_placed/body.html.j2")
    renderer.render(Notification.for_event(f.placed_event(customer=unknown)))
    renderer.render(Notification.for_event(f.placed_event(customer=swedish)))
    assert env.get_template("order_placed/body.html.j2") is template
    assert renderer._environment_for_locale["sv_SE"][1] is env  # English words: the English templates


def test_catalogs_are_compiled_once_per_process() -> None:
    first, second = Renderer(SETTINGS), Renderer(SETTINGS)
    assert {"de", "en", "pl"} <= set(first.languages)
    assert first._catalogs["de"] is second._catalogs["de"]
    assert not list(TEMPLATE_DIR.rglob("*.mo"))  # compiled in memory, never written or committed


BRANDED = Settings(shop_name="Bäckerei Müller", logo_url="https://cdn.example/logo.png", brand_color="#7a1f5c",
                   footer_address="Bäckerei Müller GmbH, Hauptstraße 1, 10115 Berlin", support_phone="+49 30 123-456",
                   chat_url="https://shop.example/chat", faq_url="https://shop.example/faq",
                   complaints_url="https://shop.example/beschwerden", complaint_response_days=14)


@pytest.mark.parametrize("template", list(Template))
def test_branding_and_help_footer_come_from_the_settings(template: Template) -> None:
    make = dict(ESCAPE_CASES)[template]
    email = Renderer(BRANDED).render(Notification.for_event(make("Blue mug")))
    shown = html.unescape(email.html)
    facts = _HtmlFacts()
    facts.feed(email.html)
    (logo,) = [attrs for tag, attrs in facts.tags if tag == "img"]
    assert (logo["src"], logo["alt"]) == ("https://cdn.example/logo.png", "Bäckerei Müller")
    assert "#7a1f5c" in email.html
    for fact in ("Bäckerei Müller GmbH, Hauptstraße 1, 10115 Berlin", "+49 30 123-456", "https://shop.example/chat",
                 "https://shop.example/faq", "https://shop.example/beschwerden", "within 14 days",
                 "help@shop.example"):
        assert fact in shown, fact
        assert fact in email.text, fact
    assert 'href="tel:+4930123456"' in email.html and 'href="mailto:help@shop.example"' in email.html


def test_without_optional_channels_the_footer_leaves_them_out(renderer: Renderer) -> None:
    plain = Renderer(Settings(faq_url="", complaints_url="", footer_address="", complaint_response_days=1))
    email = plain.render(Notification.for_event(f.shipped_event()))
    assert "<img" not in email.html and 'class="brand"' in email.html  # the shop name as text
    assert "Phone" not in email.text and "Live chat" not in email.text and "Help centre" not in email.text
    assert "we answer every complaint within 1 day." in email.text


def test_dark_mode_is_declared_and_styled(renderer: Renderer) -> None:
    email = _render(renderer, Template.SHIPPED, [f.shipped_event()])
    assert '<meta name="color-scheme" content="light dark">' in email.html
    assert '<meta name="supported-color-schemes" content="light dark">' in email.html
    assert "@media (prefers-color-scheme: dark)" in email.html


def test_default_brand_colour_is_readable_on_white() -> None:
    assert contrast_ratio(Settings().brand_color, "#ffffff") >= 4.5
    assert contrast_ratio(ShopBranding.from_settings(Settings()).colors()["brand_text_dark"], DARK_BACKGROUND) >= 4.5


@pytest.mark.parametrize("brand", ["#1f5f8b", "#ffd700", "#7cc4f5", "#000", "#ffffff", "#e11d48"])
def test_any_brand_colour_gives_readable_text(brand: str) -> None:
    colors = ShopBranding("Shop", "https://s.example", "help@s.example", brand_color=brand).colors()
    assert contrast_ratio(colors["brand_text"], "#ffffff") >= 4.5
    assert contrast_ratio(colors["brand_text_dark"], DARK_BACKGROUND) >= 4.5
    assert contrast_ratio(colors["button_text"], colors["brand"]) >= 4.5 or brand in ("#7cc4f5", "#e11d48")
    assert contrast_ratio(colors["button_text"], colors["brand"]) >= 3.0  # large bold text: WCAG AA 3:1


@pytest.mark.parametrize("brand", ["red", "#12345", "#1f5f8b; color: red", "", "#gggggg"])
def test_a_brand_colour_that_is_not_hex_is_refused_at_start_up(brand: str) -> None:
    with pytest.raises(ConfigError, match="brand-color"):
        Renderer(Settings(brand_color=brand))
