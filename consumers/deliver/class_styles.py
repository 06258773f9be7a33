"""The shop's stylesheet inlined once, not per e-mail.

E-mail clients without ``<style>`` support need every rule as a ``style=""``
attribute. The stylesheet (``templates/styles.css.j2``) uses class selectors
only, so an element's inlined style depends on its ``class`` attribute alone:
css-inline computes it once per distinct class attribute (a few dozen, all
written in the templates), and each e-mail gets them by one substitution
(~60 µs) instead of a full parse and re-serialisation (~350 µs; bench/stages.py). The @media
rules (small screens, dark mode) stay in ``<style>``, as css-inline would
leave them.
"""

from __future__ import annotations

import re
import threading

import css_inline
from markupsafe import Markup

from consumers.exceptions import RenderError

# Inside a tag only: Jinja escapes '"' in text and attribute values (&#34;), so the text of an e-mail
# cannot contain ` class="`.
_CLASS_ATTRIBUTE = re.compile(r' class="([^"]*)"')
_STYLE_ATTRIBUTE = re.compile(r' style="([^"]*)"')
_STYLE_ELEMENT = re.compile(r"<style>(.*?)</style>", re.DOTALL)
# Class attributes come from the templates, so there are few; a bound all the same.
_MAX_CACHED = 512


class ClassStyles:
    """Style attributes per class attribute for one stylesheet, computed on first sight."""

    def __init__(self, stylesheet: str) -> None:
        self._inliner = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)
        self.stylesheet = stylesheet
        self._styles: dict[str, str] = {}
        self._lock = threading.Lock()  # renders run in worker threads
        kept = _STYLE_ELEMENT.search(self._inline(""))
        #: What stays in ``<style>``: the @media rules (our own CSS, from the settings: not escaped).
        self.at_rules = Markup(kept.group(1).strip() if kept else "")

    def apply(self, html: str) -> str:
        """``html`` with a ``style`` attribute after each ``class`` attribute (none may be there yet)."""
        return _CLASS_ATTRIBUTE.sub(self._with_style, html)

    def style_for(self, classes: str) -> str:
        style = self._styles.get(classes)
        if style is None:
            found = _STYLE_ATTRIBUTE.search(self._inline(f'<div class="{classes}"></div>'))
            style = found.group(1) if found else ""
            with self._lock:
                if len(self._styles) < _MAX_CACHED:
                    self._styles[classes] = style
        return style

    def _with_style(self, match: re.Match[str]) -> str:
        style = self.style_for(match.group(1))
        return f'{match.group(0)} style="{style}"' if style else match.group(0)

    def _inline(self, body: str) -> str:
        document = f"<html><head><style>{self.stylesheet}</style></head><body>{body}</body></html>"
        try:
            return self._inliner.inline(document)
        except (css_inline.InlineError, ValueError) as exc:
            raise RenderError(f"the stylesheet templates/styles.css.j2 could not be inlined: {exc}") from exc
