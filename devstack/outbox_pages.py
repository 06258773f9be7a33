"""The demo's outbox as a shop owner reads it: ``index.html`` (one thread per order) and one page per e-mail.

Every captured message gets ``NNNNN.html`` beside its ``NNNNN.eml``: a summary of its headers, the
HTML part as a mail client shows it (in a sandboxed frame: no scripts, no forms), and the plain-text
part. ``index.html`` groups the e-mails by thread, the way a mail client does (``References``,
then ``In-Reply-To``, then the message's own ``Message-ID``), threads in the order they started and
each thread's e-mails oldest first, newest last. The pages load nothing from anywhere (a Content
Security Policy says so, for the e-mails' own images too) and escape every value they show; they fit
a 375 px phone as well as a desktop.
"""

from __future__ import annotations

import base64
import hashlib
import html
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path

from devstack.smtp_capture import CapturedMessage

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class MailLabel:
    """What the sender knows about a message that its headers do not say."""

    kind: str  # the template: order_placed, shipped...
    order_id: str


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    number: int
    kind: str
    recipient: str
    sender: str
    subject: str
    sent_at: str
    size_bytes: int
    message_id: str
    thread: str  # the Message-ID the thread hangs on
    order_id: str
    html_part: str
    text_part: str

    @property
    def eml_name(self) -> str:
        return f"{self.number:05d}.eml"

    @property
    def page_name(self) -> str:
        return f"{self.number:05d}.html"


@dataclass(frozen=True, slots=True)
class Thread:
    key: str
    order_id: str
    entries: tuple[OutboxEntry, ...]


def write_outbox_pages(outbox: Path, messages: Sequence[CapturedMessage],
                       labels: Mapping[str, MailLabel] | None = None) -> list[Path]:
    """Write a page per message (numbered as the capture numbered its ``.eml`` files) and the index, last.

    ``labels`` (by Message-ID) name each message's kind and order; without one a message shows as an
    e-mail of its thread.
    """
    entries = [_entry(n, m, labels or {}) for n, m in enumerate(messages, start=1)]
    threads = group_threads(entries)
    written: list[Path] = []
    for thread in threads:
        for position, entry in enumerate(thread.entries):
            path = outbox / entry.page_name
            path.write_text(_message_page(entry, thread, position), encoding="utf-8")
            written.append(path)
    index = outbox / "index.html"
    index.write_text(_index_page(threads, len(entries)), encoding="utf-8")
    written.append(index)
    log.info("outbox: %d e-mails in %d threads written to %s", len(entries), len(threads), outbox)
    return written


def group_threads(entries: Sequence[OutboxEntry]) -> list[Thread]:
    """Threads in the order their first e-mail arrived; each thread's e-mails in arrival order."""
    by_key: dict[str, list[OutboxEntry]] = {}
    for entry in sorted(entries, key=lambda e: e.number):
        by_key.setdefault(entry.thread, []).append(entry)
    return [Thread(key, next((e.order_id for e in group if e.order_id), ""), tuple(group))
            for key, group in by_key.items()]


def _entry(number: int, captured: CapturedMessage, labels: Mapping[str, MailLabel]) -> OutboxEntry:
    message = captured.message
    message_id = str(message.get("Message-ID", "")).strip()
    references = str(message.get("References", "")).split()
    thread = references[0] if references else str(message.get("In-Reply-To", "")).strip() or message_id
    label = labels.get(message_id) or MailLabel("e-mail", "")
    return OutboxEntry(
        number=number, kind=label.kind, recipient=", ".join(captured.rcpt_tos), sender=str(message.get("From", "")),
        subject=str(message.get("Subject", "")), sent_at=_date(message), size_bytes=len(captured.data),
        message_id=message_id, thread=thread or f"<no Message-ID {number}>", order_id=label.order_id,
        html_part=_part(message, "html"), text_part=_part(message, "plain"),
    )


def _part(message: EmailMessage, subtype: str) -> str:
    part = message.get_body(preferencelist=(subtype,))
    return "" if part is None else str(part.get_content())


def _date(message: EmailMessage) -> str:
    try:
        return parsedate_to_datetime(str(message["Date"])).strftime("%Y-%m-%d %H:%M:%S %z")
    except (TypeError, ValueError):
        return str(message.get("Date", ""))


def _size(size_bytes: int) -> str:
    return f"{size_bytes / 1024:.1f} KB"


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


# The frame grows to its e-mail's height (no scrolling inside a scrolling page); the e-mail itself runs no script.
_FIT_FRAME = ("for (const f of document.querySelectorAll('iframe.mail')) { const fit = () => { try { "
              "f.style.height = f.contentDocument.documentElement.scrollHeight + 'px'; } catch (e) {} }; "
              "f.addEventListener('load', fit); fit(); }")
_FIT_FRAME_HASH = base64.b64encode(hashlib.sha256(_FIT_FRAME.encode()).digest()).decode()
# Nothing is fetched: no remote images (as a mail client that blocks them), fonts, scripts or frames.
_CSP = (f"default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src 'sha256-{_FIT_FRAME_HASH}'; "
        "frame-src 'self' about:; base-uri 'none'; form-action 'none'")

_STYLE = """
  :root { color-scheme: light; }
  body { font-family: Arial, Helvetica, sans-serif; color: #1f2937; margin: 0 auto; padding: 16px;
         max-width: 760px; line-height: 1.4; overflow-wrap: anywhere; }
  h1 { font-size: 1.5rem; margin: 0 0 8px; }
  h2 { font-size: 1.1rem; margin: 24px 0 4px; }
  a { color: #1f5f8b; }
  .meta { color: #4b5563; font-size: 0.9rem; }
  .kind { display: inline-block; padding: 0 6px; border-radius: 4px; background: #e0ecf5; color: #123c59;
          font-size: 0.85rem; }
  ol { list-style: none; padding: 0; margin: 0; }
  li { padding: 8px 0; border-bottom: 1px solid #e5e7eb; }
  .subject { font-weight: bold; }
  dl { display: grid; grid-template-columns: max-content minmax(0, 1fr); gap: 2px 12px; margin: 12px 0; }
  dt { color: #4b5563; }
  dd { margin: 0; }
  iframe.mail { display: block; width: 100%; height: 80vh; border: 1px solid #d1d5db; border-radius: 4px; }
  pre { white-space: pre-wrap; background: #f9fafb; padding: 8px; border: 1px solid #e5e7eb; }
  nav { margin-bottom: 12px; }
"""


def _page(title: str, body: str, script: bool = False) -> str:
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"{_e(_CSP)}\">\n"
        f"<title>{_e(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n{body}\n"
        + (f"<script>{_FIT_FRAME}</script>\n" if script else "")
        + "</body>\n</html>\n"
    )


def _thread_title(thread: Thread) -> str:
    return f"Order {thread.order_id}" if thread.order_id else f"Thread {thread.key}"


def _index_page(threads: Sequence[Thread], count: int) -> str:
    kinds: dict[str, int] = {}
    for thread in threads:
        for entry in thread.entries:
            kinds[entry.kind] = kinds.get(entry.kind, 0) + 1
    summary = " · ".join(f"{_e(kind)}: {n}" for kind, n in sorted(kinds.items()))
    sections = []
    for thread in threads:
        items = "\n".join(
            f"<li><a class=\"subject\" href=\"{_e(e.page_name)}\">{_e(e.subject)}</a>"
            f"<div class=\"meta\"><span class=\"kind\">{_e(e.kind)}</span> to {_e(e.recipient)} · "
            f"{_e(_size(e.size_bytes))} · {_e(e.sent_at)} · <a href=\"{_e(e.eml_name)}\">.eml</a></div></li>"
            for e in thread.entries
        )
        plural = "s" if len(thread.entries) != 1 else ""
        sections.append(
            f"<section class=\"thread\"><h2>{_e(_thread_title(thread))}</h2>"
            f"<div class=\"meta\">{len(thread.entries)} e-mail{plural}, oldest first</div>\n"
            f"<ol>\n{items}\n</ol></section>"
        )
    body = (
        f"<h1>Outbox: {count} e-mails in {len(threads)} threads</h1>\n"
        "<p>Every e-mail the SMTP server received, one thread per order as a mail client groups them, newest "
        "last. Open a subject to read the e-mail as the customer sees it; <em>.eml</em> is the whole message "
        "as sent (open it in a mail client).</p>\n"
        f"<p class=\"meta\">{summary}</p>\n" + "\n".join(sections)
    )
    return _page(f"Outbox: {count} e-mails", body)


def _message_page(entry: OutboxEntry, thread: Thread, position: int) -> str:
    links = ["<a href=\"index.html\">All e-mails</a>"]
    if position > 0:
        links.append(f"<a href=\"{_e(thread.entries[position - 1].page_name)}\">earlier in this thread</a>")
    if position + 1 < len(thread.entries):
        links.append(f"<a href=\"{_e(thread.entries[position + 1].page_name)}\">later in this thread</a>")
    links.append(f"<a href=\"{_e(entry.eml_name)}\">.eml</a>")
    rows = [("kind", entry.kind), ("from", entry.sender), ("to", entry.recipient), ("date", entry.sent_at),
            ("size", _size(entry.size_bytes)), ("thread", f"{_thread_title(thread)}, e-mail {position + 1} of "
                                                          f"{len(thread.entries)}"),
            ("Message-ID", entry.message_id)]
    summary = "".join(f"<dt>{_e(name)}</dt><dd>{_e(value)}</dd>" for name, value in rows)
    html_part = (f"<iframe class=\"mail\" title=\"the e-mail's HTML part\" sandbox=\"allow-same-origin\" "
                 f"srcdoc=\"{_e(entry.html_part)}\"></iframe>" if entry.html_part else "<p>No HTML part.</p>")
    body = (
        f"<nav>{' · '.join(links)}</nav>\n<h1>{_e(entry.subject)}</h1>\n<dl>{summary}</dl>\n{html_part}\n"
        f"<h2>Plain-text part</h2>\n<pre>{_e(entry.text_part)}</pre>"
    )
    return _page(entry.subject, body, script=bool(entry.html_part))
