"""The demo's outbox pages in headless Chromium at a phone and a desktop width, as a shop owner opens them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from devstack.outbox_pages import write_outbox_pages
from ordernotify.config import Settings
from tests.browser import WIDTHS, browser, page_width, set_viewport
from tests.devstack.outbox_samples import captured_orders

pytestmark = [pytest.mark.integration, pytest.mark.slow]

__all__ = ["browser"]  # the fixture, used by name

_LINKS = "return [...document.querySelectorAll('a')].map(a => a.getAttribute('href'));"
# What the frame shows (the e-mail as rendered), and how tall the frame grew to show it without scrolling.
_FRAME = """const f = document.querySelector('iframe.mail');
            return [document.querySelector('h1').innerText, f.contentDocument.title, f.contentDocument.body.innerText,
                    f.getBoundingClientRect().height, f.contentDocument.documentElement.scrollHeight];"""


def test_outbox_pages_fit_a_phone_and_a_desktop_and_show_every_email(browser: Any, tmp_path: Path) -> None:
    messages, labels = captured_orders(Settings())
    for n, message in enumerate(messages, start=1):
        (tmp_path / f"{n:05d}.eml").write_bytes(message.data)
    written = write_outbox_pages(tmp_path, messages, labels)
    problems: list[str] = []
    for width in WIDTHS:
        set_viewport(browser, width)
        for page in written:
            browser.get(page.as_uri())
            browser.save_screenshot(str(tmp_path / f"{page.stem}.{width}.png"))
            if (scroll := page_width(browser)) > width:
                problems.append(f"{page.name} scrolls sideways at {width} px ({scroll} px wide)")
            links = browser.execute_script(_LINKS)
            problems += [f"{page.name}: {link} does not exist" for link in links if not (tmp_path / link).is_file()]
        browser.get(written[-1].as_uri())
        shown = set(browser.execute_script(_LINKS))
        problems += [f"index at {width} px: no entry for e-mail {n}" for n in range(1, len(messages) + 1)
                     if not {f"{n:05d}.html", f"{n:05d}.eml"} <= shown]
        for n, message in enumerate(messages, start=1):
            browser.get((tmp_path / f"{n:05d}.html").as_uri())
            heading, title, text, frame_height, content_height = browser.execute_script(_FRAME)
            order_id = labels[str(message.message["Message-ID"])].order_id
            if heading != message.subject or title != message.subject or order_id not in text:
                shows_order = "shows" if order_id in text else "does not show"
                problems.append(f"e-mail {n} at {width} px: page {heading!r}, e-mail {title!r} ({shows_order} "
                                f"order {order_id}); sent as {message.subject!r}")
            if abs(frame_height - content_height) > 2:  # the frame's border: 2 px
                problems.append(f"e-mail {n} at {width} px: {frame_height} px frame, {content_height} px of e-mail")
    assert not problems, "\n".join(problems)
