"""Templates translated at compile time must render exactly what jinja2's newstyle gettext renders."""

from __future__ import annotations

import dataclasses
import gettext
from typing import Any

import jinja2
import pytest

from consumers.deliver import rendering
from consumers.deliver.rendering import Renderer
from consumers.deliver.template_translation import TranslatingEnvironment
from consumers.notification import Notification
from ordernotify.config import Settings
from tests import factories as f
from tests.consumers.deliver.test_rendering import CASES, Case


class _Catalog(gettext.NullTranslations):
    """A catalog that translates a few messages, with the characters escaping must not touch or must."""

    WORDS = {
        "Total": "Summe & <Gesamt>",
        "Hello %(name)s,": "Hallo %(name)s,",
        "100%% sure": "100%% sicher",
        "Order %(id)s: %(what)s": "Bestellung %(id)s: %(what)s",
    }

    def gettext(self, message: str) -> str:
        return self.WORDS.get(message, message)


def _stock_environment(translations: gettext.NullTranslations, **options: Any) -> jinja2.Environment:
    env = jinja2.Environment(extensions=["jinja2.ext.i18n"], **options)
    env.install_gettext_translations(translations, newstyle=True)  # type: ignore[attr-defined]
    return env


SOURCES = [
    '{{ _("Total") }}',
    '{{ gettext("Total") }}',
    '{{ _("Hello %(name)s,", name=name) }}',
    '{{ _("100%% sure") }}',
    '{{ _("Order %(id)s: %(what)s", id=name, what=_("Total")) }}',
    "{% trans %}Hello {{ name }},{% endtrans %}",
    "{% trans n=name %}Hello {{ n }},{% endtrans %}",
    '{{ _(message) }}',
    '{{ ngettext("%(num)s item", "%(num)s items", 2) }}',
    '{{ (_("Total") ~ "!") if name else "" }}',
    '{{ "x" ~ _("Total") }}',
    '{% set label = _("Total") %}{{ label }}|{{ label|length }}',
    '{% macro b(text) %}<b>{{ text }}</b>{% endmacro %}{{ b(_("Total")) }}',
]


@pytest.mark.parametrize("autoescape", [True, False], ids=["html", "text"])
@pytest.mark.parametrize("source", SOURCES)
def test_renders_what_newstyle_gettext_renders(source: str, autoescape: bool) -> None:
    options: dict[str, Any] = {"autoescape": autoescape, "undefined": jinja2.StrictUndefined}
    ours = TranslatingEnvironment(_Catalog(), **options).from_string(source)
    stock = _stock_environment(_Catalog(), **options).from_string(source)
    data = {"name": "<Ann & Bob>", "message": "Total"}
    assert ours.render(data) == stock.render(data)


@pytest.mark.parametrize("source", SOURCES[:7])
def test_constant_messages_are_no_longer_calls(source: str) -> None:
    code = TranslatingEnvironment(_Catalog()).compile(source, raw=True)
    assert "gettext" not in code and "'_'" not in code


def test_a_computed_message_stays_a_call() -> None:
    code = TranslatingEnvironment(_Catalog()).compile("{{ _(message) }}", raw=True)
    assert "'_'" in code or "gettext" in code


@pytest.mark.parametrize("locale", ["en-GB", "de-DE", "pl-PL"])
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_every_e_mail_is_what_the_stock_i18n_extension_renders(monkeypatch: pytest.MonkeyPatch,
                                                                case: Case, locale: str) -> None:
    customer = f.make_customer(locale=locale)
    events = tuple(dataclasses.replace(e, customer=customer) for e in case.events())
    notification = Notification(case.template, events)
    ours = Renderer(Settings()).render(notification)
    monkeypatch.setattr(rendering, "TranslatingEnvironment", _stock_environment)
    stock = Renderer(Settings()).render(notification)
    assert ours == stock
