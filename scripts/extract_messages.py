"""Extract the translatable strings of the e-mail templates and update every catalog.

    .venv/bin/python scripts/extract_messages.py            # update templates/locale/*/LC_MESSAGES/messages.po
    .venv/bin/python scripts/extract_messages.py --check    # exit 1 if a catalog is stale or incomplete
    .venv/bin/python scripts/extract_messages.py --add fr   # start a new language (then translate its .po)

New strings arrive with an empty translation (shown in English until translated),
changed ones as fuzzy (not used until a translator checks them), and strings no
longer in the templates are dropped. ``pybabel extract -F babel.cfg`` reads the same
options, for those who prefer the Babel command line.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_DIR = ROOT / "templates"
LOCALE_DIR = TEMPLATE_DIR / "locale"
SOURCE_LANGUAGE = "en"
# Must match consumers/deliver/rendering.py: the i18n extension, trimmed whitespace, new-style gettext.
METHOD_MAP = [("**.j2", "jinja2.ext:babel_extract")]
OPTIONS_MAP = {"**.j2": {"extensions": "jinja2.ext.i18n", "trimmed": "true", "newstyle_gettext": "true",
                         "trim_blocks": "true", "lstrip_blocks": "true"}}
_FIXED_DATE = datetime(2030, 1, 1, tzinfo=UTC)  # keeps the headers stable: no diff when nothing changed


def extract(template_dir: Path = TEMPLATE_DIR) -> Catalog:
    """Every message the templates use, as a template catalog (no translations)."""
    catalog = Catalog(project="ordernotify", charset="utf-8", creation_date=_FIXED_DATE,
                      revision_date=_FIXED_DATE, fuzzy=False)
    for filename, lineno, message, comments, context in extract_from_dir(
        template_dir, METHOD_MAP, OPTIONS_MAP, keywords={"_": None, "gettext": None, "ngettext": (1, 2)},
    ):
        catalog.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    return catalog


def catalog_path(language: str, locale_dir: Path = LOCALE_DIR) -> Path:
    return locale_dir / language / "LC_MESSAGES" / "messages.po"


def read_catalog(path: Path) -> Catalog:
    with path.open("rb") as fh:
        return read_po(fh, locale=path.parent.parent.name)


def render_po(catalog: Catalog) -> bytes:
    buffer = BytesIO()
    write_po(buffer, catalog, width=100, sort_output=False, include_previous=False, omit_header=False)
    return buffer.getvalue()


def updated(language: str, template: Catalog, locale_dir: Path = LOCALE_DIR) -> Catalog:
    path = catalog_path(language, locale_dir)
    if path.exists():
        catalog = read_catalog(path)
    else:
        catalog = Catalog(locale=language, project="ordernotify", charset="utf-8", creation_date=_FIXED_DATE,
                          revision_date=_FIXED_DATE, fuzzy=False)
    catalog.update(template, no_fuzzy_matching=False, update_header_comment=False)
    catalog.obsolete.clear()
    catalog.revision_date = _FIXED_DATE
    catalog.fuzzy = False
    return catalog


def problems(catalog: Catalog) -> list[str]:
    """Untranslated or fuzzy messages of a translated (not source-language) catalog."""
    found = []
    for message in catalog:
        if not message.id:
            continue
        strings = message.string if isinstance(message.string, tuple | list) else (message.string,)
        if message.fuzzy or not all(strings):
            found.append(f"{'fuzzy' if message.fuzzy else 'untranslated'}: {message.id!r}")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if any catalog needs work")
    parser.add_argument("--add", metavar="LANG", help="create the catalog of a new language (e.g. fr, pt_BR)")
    args = parser.parse_args(argv)
    template = extract()
    languages = sorted({p.parent.parent.name for p in LOCALE_DIR.glob("*/LC_MESSAGES/messages.po")}
                       | {SOURCE_LANGUAGE} | ({args.add} if args.add else set()))
    failed = False
    for language in languages:
        catalog = updated(language, template)
        data = render_po(catalog)
        path = catalog_path(language)
        todo = [] if language == SOURCE_LANGUAGE else problems(catalog)
        if args.check:
            stale = not path.exists() or path.read_bytes() != data
            if stale or todo:
                failed = True
                print(f"{path.relative_to(ROOT)}: {'stale, run scripts/extract_messages.py' if stale else ''}")
                for line in todo:
                    print(f"  {line}")
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        print(f"{path.relative_to(ROOT)}: {len(catalog)} messages, {len(todo)} to translate")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
