"""The renderer as it was before styles were inlined once per shop: css-inline over each whole e-mail.

The naive baseline keeps this (the afternoon version inlines per e-mail), so the baseline does not move when
the product gets faster; the stage bench measures both.
"""

from __future__ import annotations

import dataclasses

import css_inline

from consumers.deliver.rendering import RenderedEmail, Renderer
from consumers.notification import Notification
from ordernotify.config import Settings


class NoStyles:
    """Stands in for a renderer's ClassStyles: Jinja's output with the @media rules, no style attributes."""

    def __init__(self, at_rules: str) -> None:
        self.at_rules = at_rules

    @staticmethod
    def apply(html: str) -> str:
        return html


class WholeEmailInlining:
    """Renders with the product's templates, then css-inline over the whole e-mail and whole stylesheet."""

    def __init__(self, settings: Settings) -> None:
        self.renderer = Renderer(settings)
        styles = self.renderer._styles
        self._stylesheet, self._at_rules = styles.stylesheet, styles.at_rules
        self.renderer._styles = NoStyles(styles.at_rules)  # type: ignore[assignment]
        self._inliner = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)

    def render(self, notification: Notification) -> RenderedEmail:
        rendered = self.renderer.render(notification)
        return dataclasses.replace(rendered, html=self.inline(rendered.html))

    def inline(self, unstyled_html: str) -> str:
        whole = unstyled_html.replace(f"<style>\n{self._at_rules}", f"<style>\n{self._stylesheet}", 1)
        return self._inliner.inline(whole)
