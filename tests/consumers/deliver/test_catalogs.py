"""The translation catalogs: complete, in step with the templates, and safe to format."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.plurals import get_plural

from consumers.deliver.catalogs import available_languages, load_translations
from templates import TEMPLATE_DIR

# Discovered from the directory: a catalog added under templates/locale is checked without touching this file.
TRANSLATED = tuple(sorted(set(available_languages(TEMPLATE_DIR / "locale")) - {"en"}))
# %(name)s (Jinja's trans blocks, gettext's keyword arguments) and {name} (str.format style).
_PLACEHOLDER = re.compile(r"%\((\w+)\)[a-z]|(?<!\{)\{(\w+)\}(?!\})")
_TAG = re.compile(r"</?[a-z][^>]*>")


def _load_script() -> ModuleType:
    path = Path(__file__).resolve().parents[3] / "scripts" / "extract_messages.py"
    spec = importlib.util.spec_from_file_location("extract_messages", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("extract_messages", module)
    spec.loader.exec_module(module)
    return module


SCRIPT = _load_script()


@pytest.fixture(scope="module")
def extracted() -> Catalog:
    return SCRIPT.extract()


def _catalog(language: str) -> Catalog:
    catalog: Catalog = SCRIPT.read_catalog(SCRIPT.catalog_path(language))
    return catalog


def _strings(message: Message) -> tuple[str, ...]:
    return tuple(message.string) if isinstance(message.string, tuple | list) else (message.string,)


def _ids(message: Message) -> tuple[str, ...]:
    return tuple(message.id) if isinstance(message.id, tuple | list) else (message.id,)


def _placeholders(text: str) -> set[str]:
    """``{"%(name)s", "{count}"}``: as written, so that ``{name}`` never passes for ``%(name)s``."""
    return {match.group(0) for match in _PLACEHOLDER.finditer(text)}


def catalog_problems(catalog: Catalog, template: Catalog) -> list[str]:
    """What is wrong with a translated catalog, as lines a translator can act on; empty when it is complete."""
    language = str(catalog.locale)
    found = []
    expected_plurals = get_plural(language)
    if (catalog.num_plurals, catalog.plural_expr) != (expected_plurals.num_plurals, expected_plurals.plural_expr):
        found.append(f"Plural-Forms header: {catalog.plural_forms!r}, the language has "
                     f"{expected_plurals.plural_forms!r}")
    for template_message in template:
        if not template_message.id:
            continue
        message = catalog.get(template_message.id, template_message.context)
        if message is None:
            found.append(f"missing: {template_message.id!r}")
            continue
        if message.fuzzy:
            found.append(f"fuzzy: {message.id!r}")
        ids, strings = _ids(message), _strings(message)
        plural = isinstance(message.id, tuple | list)
        if plural and len(strings) != catalog.num_plurals:
            found.append(f"{len(strings)} plural forms of {ids[0]!r}, the language has {catalog.num_plurals}")
        if not all(s.strip() for s in strings):
            found.append(f"untranslated: {ids[0]!r}")
            continue
        if len(ids[0].split()) > 3 and ids[0] in strings:
            found.append(f"left in English: {ids[0]!r}")
        allowed = set().union(*(_placeholders(i) for i in ids))
        # Every form keeps what both English forms say (a singular may say "a parcel" instead of "%(num)s
        # parcels"); the last form, the one for most numbers, keeps everything the English plural says.
        required = [_placeholders(ids[0])] if not plural else [
            _placeholders(ids[0]) & _placeholders(ids[1])] * (len(strings) - 1) + [_placeholders(ids[1])]
        tags = sorted(_TAG.findall(ids[0]))
        for string, needed in zip(strings, required, strict=False):
            used = _placeholders(string)
            if not used <= allowed:
                found.append(f"unknown placeholder {sorted(used - allowed)} in {string!r}")
            if not needed <= used:
                found.append(f"lost placeholder {sorted(needed - used)} in {string!r}")
            if sorted(_TAG.findall(string)) != tags:
                found.append(f"markup changed in {string!r}")
            if "%" in _PLACEHOLDER.sub("", string):
                found.append(f"stray % in {string!r}")
    return found


def test_languages_are_found_in_the_locale_directory() -> None:
    assert set(available_languages(TEMPLATE_DIR / "locale")) >= {"en", "de", "pl", "fr", "es", "it", "nl"}
    assert set(TRANSLATED) == {p.parent.parent.name for p in (TEMPLATE_DIR / "locale").glob("*/LC_MESSAGES/*.po")
                               } - {"en"}


@pytest.mark.parametrize("language", ["en", *TRANSLATED])
def test_catalog_has_exactly_the_messages_of_the_templates(extracted: Catalog, language: str) -> None:
    catalog = _catalog(language)
    template_ids = {_ids(m) for m in extracted if m.id}
    catalog_ids = {_ids(m) for m in catalog if m.id}
    assert catalog_ids == template_ids, "run: .venv/bin/python scripts/extract_messages.py"


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_catalog_is_complete_and_keeps_placeholders_and_markup(extracted: Catalog, language: str) -> None:
    assert catalog_problems(_catalog(language), extracted) == []


def _copy_with(language: str, msgid: str, string: str | tuple[str, ...], fuzzy: bool = False) -> Catalog:
    catalog = _catalog(language)
    message = catalog[msgid]
    assert message is not None
    message.string = string
    if fuzzy:
        message.flags.add("fuzzy")
    return catalog


_DAYS = "Not happy with something? Write to us: we answer every complaint within %(num)s day."
_PARCELS = "Good news: we have handed a parcel from your order %(order_id)s to the carrier."


@pytest.mark.parametrize(
    ("language", "msgid", "string", "fuzzy", "problem"),
    [
        ("de", "Hello %(name)s,", "", False, "untranslated"),
        ("de", "Hello %(name)s,", "Hallo %(name)s,", True, "fuzzy"),
        ("de", "Hello %(name)s,", "Hallo,", False, "lost placeholder ['%(name)s']"),
        ("de", "Hello %(name)s,", "Hallo %(nmae)s,", False, "unknown placeholder ['%(nmae)s']"),
        ("de", "Hello %(name)s,", "Hallo {name},", False, "unknown placeholder ['{name}']"),
        ("de", "Hello %(name)s,", "Hallo %(name)d,", False, "lost placeholder ['%(name)s']"),
        ("de", "Hello %(name)s,", "Hallo %(name)s, 100 %", False, "stray %"),
        ("de", "Or open this link: <a class=\"link\" href=\"%(url)s\">%(url)s</a>",
         "Oder öffnen Sie diesen Link: %(url)s", False, "markup changed"),
        ("de", "We made a mistake with a price in your order %(order_id)s. Here is what happens now.",
         "We made a mistake with a price in your order %(order_id)s. Here is what happens now.", False,
         "left in English"),
        ("pl", _DAYS, ("%(num)s dnia", "%(num)s dni", ""), False, "untranslated"),
        ("pl", _DAYS, ("%(num)s dnia", "%(num)s dni"), False, "2 plural forms"),
        ("pl", _DAYS, ("jeden dzień", "%(num)s dni", "%(num)s dni"), False, "lost placeholder ['%(num)s']"),
        ("fr", _PARCELS, ("un colis de %(order_id)s", "des colis de %(order_id)s"), False,
         "lost placeholder ['%(num)s']"),
    ],
)
def test_the_catalog_checks_name_what_is_wrong(extracted: Catalog, language: str, msgid: str,
                                                string: str | tuple[str, ...], fuzzy: bool, problem: str) -> None:
    catalog = _copy_with(language, msgid, string, fuzzy)
    assert any(problem in line for line in catalog_problems(catalog, extracted))


def test_the_catalog_checks_want_the_plural_rule_of_the_language(extracted: Catalog) -> None:
    catalog = _catalog("fr")
    catalog._num_plurals, catalog._plural_expr = 2, "(n != 1)"  # the English rule: "0 colis" would be plural
    assert any(line.startswith("Plural-Forms header") for line in catalog_problems(catalog, extracted))


def test_a_missing_message_is_named(extracted: Catalog) -> None:
    catalog = _catalog("it")
    catalog.delete("Tax")
    assert "missing: 'Tax'" in catalog_problems(catalog, extracted)


def test_source_catalog_translates_nothing() -> None:
    assert all(not any(_strings(m)) for m in _catalog("en") if m.id)


def test_the_extract_script_finds_nothing_to_do() -> None:
    assert SCRIPT.main(["--check"]) == 0


@pytest.mark.parametrize(
    ("language", "count", "expected"),
    [("pl", 1, "Twoja paczka jest w drodze"), ("pl", 3, "Twoje paczki są w drodze"),
     ("pl", 5, "Twoje paczki są w drodze"), ("de", 2, "Ihre Pakete sind unterwegs"),
     ("fr", 1, "Votre colis est en route"), ("fr", 0, "Votre colis est en route"),  # French: 0 is singular
     ("fr", 2, "Vos colis sont en route"), ("es", 2, "Sus paquetes están en camino"),
     ("it", 1, "Il Suo pacco è in viaggio"), ("nl", 2, "Uw pakketten zijn onderweg")],
)
def test_compiled_catalog_uses_the_plural_rules_of_the_language(language: str, count: int, expected: str) -> None:
    translations = load_translations(SCRIPT.catalog_path(language))
    assert translations.ngettext("Your parcel is on its way", "Your parcels are on their way", count) == expected


def test_fuzzy_and_empty_translations_fall_back_to_english(tmp_path: Path) -> None:
    po_file = tmp_path / "xx" / "LC_MESSAGES" / "messages.po"
    po_file.parent.mkdir(parents=True)
    po_file.write_text(
        'msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=utf-8\\n"\n\n'
        '#, fuzzy\nmsgid "Hello,"\nmsgstr "Guess,"\n\n'
        'msgid "Item"\nmsgstr ""\n\n'
        'msgid "Price"\nmsgid_plural "Prices"\nmsgstr[0] ""\nmsgstr[1] ""\n\n'
        'msgid "Total"\nmsgstr "Summa"\n',
        encoding="utf-8",
    )
    translations = load_translations(po_file)
    assert translations.gettext("Hello,") == "Hello,"
    assert translations.gettext("Item") == "Item"
    assert translations.ngettext("Price", "Prices", 2) == "Prices"
    assert translations.gettext("Total") == "Summa"
