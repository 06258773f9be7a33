"""The translation catalogs: complete, in step with the templates, and safe to format."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest
from babel.messages.catalog import Catalog, Message

from consumers.deliver.catalogs import available_languages, load_translations
from templates import TEMPLATE_DIR

TRANSLATED = tuple(sorted(set(available_languages(TEMPLATE_DIR / "locale")) - {"en"}))
_PLACEHOLDER = re.compile(r"%\((\w+)\)s")
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


def test_english_and_two_more_languages() -> None:
    assert set(available_languages(TEMPLATE_DIR / "locale")) >= {"en", "de", "pl"}


@pytest.mark.parametrize("language", ["en", *TRANSLATED])
def test_catalog_has_exactly_the_messages_of_the_templates(extracted: Catalog, language: str) -> None:
    catalog = _catalog(language)
    template_ids = {_ids(m) for m in extracted if m.id}
    catalog_ids = {_ids(m) for m in catalog if m.id}
    assert catalog_ids == template_ids, "run: .venv/bin/python scripts/extract_messages.py"


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_message_is_translated(extracted: Catalog, language: str) -> None:
    catalog = _catalog(language)
    assert catalog.num_plurals == {"de": 2, "pl": 3}.get(language, catalog.num_plurals)
    for template_message in extracted:
        if not template_message.id:
            continue
        message = catalog.get(template_message.id, template_message.context)
        assert message is not None, f"{language}: missing {template_message.id!r}"
        assert not message.fuzzy, f"{language}: fuzzy {message.id!r}"
        strings = _strings(message)
        assert all(s.strip() for s in strings), f"{language}: untranslated {message.id!r}"
        if isinstance(message.id, tuple | list):
            assert len(strings) == catalog.num_plurals, f"{language}: plural forms of {message.id!r}"


@pytest.mark.parametrize("language", TRANSLATED)
def test_translations_keep_placeholders_and_markup(language: str) -> None:
    for message in _catalog(language):
        if not message.id:
            continue
        ids = _ids(message)
        allowed = set().union(*(_PLACEHOLDER.findall(i) for i in ids))
        tags = sorted(_TAG.findall(ids[0]))
        for string in _strings(message):
            used = set(_PLACEHOLDER.findall(string))
            assert used <= allowed, f"{language}: {string!r} uses {used - allowed}"
            if not isinstance(message.id, tuple | list):
                assert used == allowed, f"{language}: {string!r} drops {allowed - used}"
            assert sorted(_TAG.findall(string)) == tags, f"{language}: markup of {string!r}"
            assert "%" not in _PLACEHOLDER.sub("", string), f"{language}: stray % in {string!r}"


def test_source_catalog_translates_nothing() -> None:
    assert all(not any(_strings(m)) for m in _catalog("en") if m.id)


def test_the_extract_script_finds_nothing_to_do() -> None:
    assert SCRIPT.main(["--check"]) == 0


@pytest.mark.parametrize(
    ("language", "count", "expected"),
    [("pl", 1, "Twoja paczka jest w drodze"), ("pl", 3, "Twoje paczki są w drodze"),
     ("pl", 5, "Twoje paczki są w drodze"), ("de", 2, "Ihre Pakete sind unterwegs")],
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
