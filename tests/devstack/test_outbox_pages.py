"""The demo's outbox pages: every e-mail listed in its order's thread, newest last, escaped, nothing fetched."""

from __future__ import annotations

import re
from pathlib import Path

from devstack.outbox_pages import write_outbox_pages
from devstack.smtp_capture import CapturedMessage
from ordernotify.config import Settings
from tests.devstack.outbox_samples import ARRIVALS, captured_orders

_HOSTILE = (
    b"Message-ID: <x1@shop.example>\r\nFrom: Shop <orders@shop.example>\r\nTo: ada@example.org\r\n"
    b"Subject: <script>alert(1)</script> & \"quoted\"\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: multipart/alternative; boundary=\"b\"\r\n\r\n"
    b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n</pre><b>plain</b>\r\n"
    b"--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
    b"<p>\"></iframe><script>alert(2)</script><img src=\"https://tracker.example/p.gif\"></p>\r\n--b--\r\n"
)


def test_every_email_has_a_page_and_an_entry_in_its_orders_thread_newest_last(tmp_path: Path) -> None:
    messages, labels = captured_orders(Settings())
    for n, message in enumerate(messages, start=1):  # as the capture server writes them
        (tmp_path / f"{n:05d}.eml").write_bytes(message.data)
    written = write_outbox_pages(tmp_path, messages, labels)
    index = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert written[-1] == tmp_path / "index.html"
    assert sorted(p.name for p in written[:-1]) == [f"{n:05d}.html" for n in range(1, len(messages) + 1)]
    links = re.findall(r'href="([^"]+)"', index)
    assert all((tmp_path / link).is_file() for link in links), links
    assert {f"{n:05d}.{ext}" for n in range(1, len(messages) + 1) for ext in ("html", "eml")} == set(links)
    # Threads in the order they started (A-1 first), each oldest first: A-1 has e-mails 1, 3, 5; B-2 has 2, 4.
    pages = re.findall(r'href="(\d+)\.html"', index)
    assert pages == ["00001", "00003", "00005", "00002", "00004"]
    assert index.index("Order A-1") < index.index("Order B-2")
    assert [index.count(f'<span class="kind">{kind.value}</span>') for kind in {t for _, t, _ in ARRIVALS}] \
        == [sum(t is kind for _, t, _ in ARRIVALS) for kind in {t for _, t, _ in ARRIVALS}]
    for n, message in enumerate(messages, start=1):
        page = (tmp_path / f"{n:05d}.html").read_text(encoding="utf-8")
        assert message.subject in index and f"<h1>{message.subject}</h1>" in page
        assert message.rcpt_tos[0] in page and message.rcpt_tos[0] in index
    third = (tmp_path / "00003.html").read_text(encoding="utf-8")
    assert "Order A-1, e-mail 2 of 3" in third
    assert 'href="00001.html">earlier in this thread' in third and 'href="00005.html">later in this thread' in third


def test_everything_shown_is_escaped_and_nothing_is_fetched(tmp_path: Path) -> None:
    written = write_outbox_pages(tmp_path, [CapturedMessage("orders@shop.example", ("ada@example.org",), _HOSTILE)])
    page, index = (p.read_text(encoding="utf-8") for p in written)
    for html in (page, index):
        assert "<script>alert" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quoted&quot;" in html
        assert 'http-equiv="Content-Security-Policy" content="default-src &#x27;none&#x27;;' in html
        assert not re.search(r"<(link|img|script)[^>]+(src|href)=", html)
    assert "&lt;/pre&gt;&lt;b&gt;plain" in page
    # The HTML part only inside the sandboxed frame's srcdoc, where its quotes cannot end the attribute.
    srcdoc = re.search(r'<iframe [^>]*sandbox="allow-same-origin" srcdoc="([^"]*)"></iframe>', page)
    assert srcdoc is not None and "&lt;/iframe&gt;&lt;script&gt;alert(2)" in srcdoc.group(1)
    assert "e-mail" in index  # no label: a kind that says so rather than a guess
