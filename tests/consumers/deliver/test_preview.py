"""The preview gallery written to disk: every template in every language, an index that links them all."""

from __future__ import annotations

import email
import re
from email import policy
from html.parser import HTMLParser
from pathlib import Path

import pytest

from consumers.deliver.catalogs import available_languages
from consumers.deliver.preview import SAMPLES, SIZE_LIMIT_BYTES, write_gallery
from consumers.notification import Template
from ordernotify.config import Settings
from templates import TEMPLATE_DIR

# Every catalog found, English always: a new catalog is in the gallery without touching this file.
LANGUAGES = tuple(sorted(set(available_languages(TEMPLATE_DIR / "locale")) | {"en"}))


@pytest.fixture(scope="module")
def gallery(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    out = tmp_path_factory.mktemp("gallery")
    return out, write_gallery(out, Settings())


def test_every_template_language_and_sample_is_written(gallery: tuple[Path, list[Path]]) -> None:
    out, written = gallery
    assert written[-1] == out / "index.html"
    assert all(p.is_file() and p.stat().st_size > 0 for p in written)
    for sample in SAMPLES:
        for language in LANGUAGES:
            for ext in ("html", "txt", "eml"):
                assert out / sample.template.value / f"{sample.case}.{language}.{ext}" in written
    assert len(written) == len(SAMPLES) * len(LANGUAGES) * 3 + 1
    assert {s.template for s in SAMPLES} == set(Template)
    cases = {s.case for s in SAMPLES}
    assert {"one-item", "many-items", "long-names", "partial-shipment"} <= cases


def test_index_links_every_file_with_subject_and_size(gallery: tuple[Path, list[Path]]) -> None:
    out, written = gallery
    index = (out / "index.html").read_text(encoding="utf-8")
    links = set(re.findall(r'href="([^"]+)"', index))
    assert links == {p.relative_to(out).as_posix() for p in written if p.name != "index.html"}
    assert "Your order 100-4711: shipped" in index and "Ihre Bestellung 100-4711: versandt" in index
    assert "Twoje zamówienie 100-4711: wysłane" in index
    # A subject is one line of plain spaces (the French no-break space before ":" too).
    assert "Votre commande 100-4711 : expédiée" in index and "Su pedido 100-4711: enviado" in index
    assert "Il Suo ordine 100-4711: spedito" in index and "Uw bestelling 100-4711: verzonden" in index
    assert {"fr", "es", "it", "nl"} <= set(LANGUAGES)
    assert re.search(r"\d+\.\d KB", index) and "over the limit" not in index


def test_every_part_is_what_it_claims(gallery: tuple[Path, list[Path]]) -> None:
    _out, written = gallery
    for path in written:
        if path.suffix == ".html" and path.name != "index.html":
            assert path.stat().st_size < SIZE_LIMIT_BYTES, path
            assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
        elif path.suffix == ".txt":
            assert "<" not in path.read_text(encoding="utf-8"), path
        elif path.suffix == ".eml":
            message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
            assert message.get_content_type() == "multipart/alternative"
            language = path.name.split(".")[-2]
            assert message["Content-Language"].startswith(language), path


def test_gallery_is_the_same_on_every_run(tmp_path: Path, gallery: tuple[Path, list[Path]]) -> None:
    out, written = gallery
    again = write_gallery(tmp_path, Settings())
    assert [p.relative_to(tmp_path) for p in again] == [p.relative_to(out) for p in written]
    boundary = re.compile(rb"=+\d+==")  # the MIME boundary is random by design
    for first, second in zip(written, again, strict=True):
        assert boundary.sub(b"", first.read_bytes()) == boundary.sub(b"", second.read_bytes()), first


class _VisibleText(HTMLParser):
    """The text a reader sees, with a break at every tag (so words of two cells never touch)."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._hidden = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._hidden = tag in ("style", "title")
        self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        self._hidden = False
        self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data)


def test_no_two_sentences_run_together(gallery: tuple[Path, list[Path]]) -> None:
    """A sentence ending in a block tag loses its newline (trim_blocks): "agree.Please choose" would show."""
    _out, written = gallery
    glued = re.compile(r"[^\W\d][.:!?,;][^\W\d_]")
    for path in written:
        if path.suffix not in (".html", ".txt") or path.name == "index.html":
            continue
        source = path.read_text(encoding="utf-8")
        if path.suffix == ".html":
            parser = _VisibleText()
            parser.feed(source)
            source = "".join(parser.parts)
        for line in source.splitlines():
            words = [w for w in line.split() if "://" not in w and "@" not in w and "shop.example" not in w]
            found = glued.search(" ".join(words))
            assert not found, f"{path.name}: {line.strip()!r}"
