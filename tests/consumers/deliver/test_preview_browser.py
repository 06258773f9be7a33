"""The preview gallery opened in a real browser (headless Chromium): every e-mail at a phone and a desktop width.

Fails on horizontal scrolling at 375 px, an image without alt text, or an HTML part
over the size at which Gmail clips a message. Screenshots land in the test's tmp
folder (``pytest --basetemp=DIR`` keeps them somewhere you can look).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from consumers.deliver.preview import SIZE_LIMIT_BYTES, write_gallery
from ordernotify.config import Settings
from tests.browser import WIDTHS, browser, page_width, set_viewport

pytestmark = [pytest.mark.integration, pytest.mark.slow]

__all__ = ["browser"]  # the fixture, used by name
# A logo, so that the alt-text check has an image to look at (never loaded: the browser is offline).
SETTINGS = Settings(logo_url="https://shop.example/logo.png", support_phone="+44 20 7946 0958",
                    chat_url="https://shop.example/chat")


def test_every_email_fits_a_phone_and_a_desktop(browser: object, tmp_path: Path) -> None:
    gallery = tmp_path / "gallery"
    pages = [p for p in write_gallery(gallery, SETTINGS) if p.suffix == ".html" and p.name != "index.html"]
    shots = tmp_path / "screenshots"
    shots.mkdir()
    assert len(pages) >= 45
    problems: list[str] = []
    driver = browser
    for width in WIDTHS:
        set_viewport(driver, width)
        for page in pages:
            name = page.relative_to(gallery).as_posix()
            size = page.stat().st_size
            if size >= SIZE_LIMIT_BYTES:
                problems.append(f"{name}: {size} bytes, Gmail clips at {SIZE_LIMIT_BYTES}")
            driver.get(page.as_uri())  # type: ignore[attr-defined]
            client, scroll = driver.execute_script(  # type: ignore[attr-defined]
                "const d = document.documentElement; return [d.clientWidth, d.scrollWidth];")
            assert client == width, f"viewport is {client} px, not {width}: the emulation did not apply"
            if width == 375 and scroll > client:
                problems.append(f"{name}: scrolls sideways at {width} px ({scroll} > {client})")
            missing_alt = driver.execute_script(  # type: ignore[attr-defined]
                "return [...document.images].filter(i => !(i.getAttribute('alt') || '').trim()).length;")
            if missing_alt:
                problems.append(f"{name}: {missing_alt} image(s) without alt text")
            images = driver.execute_script("return document.images.length;")  # type: ignore[attr-defined]
            if images < 1:
                problems.append(f"{name}: no logo image, the alt check checked nothing")
            driver.save_screenshot(str(shots / f"{name.replace('/', '__')}.{width}.png"))  # type: ignore[attr-defined]
    assert not problems, "\n".join(problems)
    assert len(list(shots.glob("*.png"))) == len(pages) * len(WIDTHS)


def test_gallery_index_fits_a_phone_and_a_desktop(browser: Any, tmp_path: Path) -> None:
    index = write_gallery(tmp_path, SETTINGS)[-1]
    for width in WIDTHS:
        set_viewport(browser, width)
        browser.get(index.as_uri())
        scroll = page_width(browser)
        browser.save_screenshot(str(tmp_path / f"index.{width}.png"))
        assert scroll <= width, f"the gallery index scrolls sideways at {width} px ({scroll} > {width})"


# What Gmail's mobile web client keeps of an e-mail: no <style> element (so no @media rules), and none
# of the wrapping properties that Gmail, Outlook, Apple Mail or Yahoo lack (tests/templates/email_lint/).
_STYLE_ELEMENT = re.compile(r"<style>.*?</style>", re.DOTALL)
_WRAPPING = re.compile(r"(?:overflow-wrap|word-wrap|word-break|white-space)\s*:[^;\"]*;?")


def test_every_email_fits_a_phone_without_media_queries_or_wrapping_styles(browser: object, tmp_path: Path) -> None:
    gallery = tmp_path / "gallery"
    pages = [p for p in write_gallery(gallery, SETTINGS) if p.suffix == ".html" and p.name != "index.html"]
    driver = browser
    set_viewport(driver, 375)
    problems: list[str] = []
    for page in pages:
        html = page.read_text(encoding="utf-8")
        bare = _WRAPPING.sub("", _STYLE_ELEMENT.sub("", html))
        assert "@media" in html and "@media" not in bare
        page.write_text(bare, encoding="utf-8")
        driver.get(page.as_uri())  # type: ignore[attr-defined]
        client, scroll = driver.execute_script(  # type: ignore[attr-defined]
            "const d = document.documentElement; return [d.clientWidth, d.scrollWidth];")
        assert client == 375, f"viewport is {client} px, not 375: the emulation did not apply"
        if scroll > client:
            problems.append(f"{page.relative_to(gallery).as_posix()}: scrolls sideways ({scroll} > {client})")
    assert len(pages) >= 45
    assert not problems, "\n".join(problems)


def test_gallery_index_opens_and_links_every_email(browser: object, tmp_path: Path) -> None:
    written = write_gallery(tmp_path, Settings())
    driver = browser
    set_viewport(driver, 800)
    driver.get(written[-1].as_uri())  # type: ignore[attr-defined]
    links = driver.execute_script(  # type: ignore[attr-defined]
        "return [...document.querySelectorAll('a')].map(a => a.getAttribute('href'));")
    emails = [p.relative_to(tmp_path).as_posix() for p in written if p.suffix in (".html", ".txt", ".eml")
              and p.name != "index.html"]
    assert sorted(links) == sorted(emails)


_COLOURS = """
    const css = (sel, prop) => getComputedStyle(document.querySelector(sel))[prop];
    return {background: css('.container', 'backgroundColor'), h1: css('.h1', 'color'),
            text: css('.p', 'color'), link: css('.link', 'color'),
            button: css('.button-cell', 'backgroundColor'), label: css('.button', 'color')};
"""


def _hex(css_rgb: str) -> str:
    """``rgb(17, 24, 39)`` -> ``#111827``."""
    parts = css_rgb[css_rgb.index("(") + 1:css_rgb.index(")")].split(",")[:3]
    return "#" + "".join(f"{int(float(p)):02x}" for p in parts)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_text_stays_readable_in_light_and_dark_mode(browser: object, tmp_path: Path, scheme: str) -> None:
    from consumers.deliver.branding import contrast_ratio

    # A pale brand colour: the e-mail must darken (light mode) or keep (dark mode) it to stay readable.
    written = write_gallery(tmp_path, Settings(brand_color="#7cc4f5"))
    page = next(p for p in written if p.name == "one-item.en.html" and p.parent.name == "shipped")
    driver = browser
    set_viewport(driver, 800)
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {  # type: ignore[attr-defined]
        "features": [{"name": "prefers-color-scheme", "value": scheme}]})
    try:
        driver.get(page.as_uri())  # type: ignore[attr-defined]
        colours = driver.execute_script(_COLOURS)  # type: ignore[attr-defined]
        driver.save_screenshot(str(tmp_path / f"shipped.{scheme}.png"))  # type: ignore[attr-defined]
    finally:
        driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})  # type: ignore[attr-defined]
    background = _hex(colours["background"])
    assert (background == "#ffffff") == (scheme == "light"), background
    for what in ("h1", "text", "link"):
        assert contrast_ratio(_hex(colours[what]), background) >= 4.5, (what, colours)
    assert contrast_ratio(_hex(colours["label"]), _hex(colours["button"])) >= 4.5, colours
