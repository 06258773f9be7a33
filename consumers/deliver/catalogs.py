"""Translation catalogs of the e-mail templates: ``templates/locale/<lang>/LC_MESSAGES/messages.po``.

Only the ``.po`` sources are kept in the repository (text, reviewable in a diff); they
are compiled to ``.mo`` in memory once per process and language. English is the source
language: its catalog has empty translations, and a message missing from any catalog
shows in English rather than failing.
"""

from __future__ import annotations

import functools
import logging
from io import BytesIO
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

log = logging.getLogger(__name__)

GETTEXT_DOMAIN = "messages"
SOURCE_LANGUAGE = "en"


def catalog_path(locale_dir: Path, language: str) -> Path:
    return locale_dir / language / "LC_MESSAGES" / f"{GETTEXT_DOMAIN}.po"


def available_languages(locale_dir: Path) -> dict[str, Path]:
    """Catalog name (``de``, ``pt_BR``) -> its ``.po`` file, for every catalog under ``locale_dir``."""
    if not locale_dir.is_dir():
        return {}
    return {
        path.parent.parent.name: path
        for path in sorted(locale_dir.glob(f"*/LC_MESSAGES/{GETTEXT_DOMAIN}.po"))
    }


def load_translations(po_file: Path) -> Translations:
    """The compiled catalog; fuzzy and empty translations are left out (they show in English)."""
    stat = po_file.stat()
    return _compile(str(po_file), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=64)
def _compile(po_file: str, mtime_ns: int, size: int) -> Translations:
    language = Path(po_file).parent.parent.name
    with open(po_file, "rb") as fh:
        catalog = read_po(fh, locale=language, domain=GETTEXT_DOMAIN)
    for message in list(catalog):
        strings = message.string if isinstance(message.string, tuple | list) else (message.string,)
        if message.id and not all(strings):  # write_mo would keep a plural with an empty form
            catalog.delete(message.id, message.context)
    buffer = BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    log.debug("compiled %s (%d messages)", po_file, len(catalog))
    return Translations(buffer, domain=GETTEXT_DOMAIN)
