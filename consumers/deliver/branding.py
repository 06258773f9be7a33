"""The shop as its e-mails show it: name, links, support channels and colours, checked once at start-up.

Colours are configuration, but a shop's accent colour is not always readable as text
(a light yellow on white) or behind white button text. Rather than trust it, the
e-mails use variants of it that meet WCAG's 4.5:1 contrast for normal text, in light
and in dark mode: the brand stays recognisable, the text stays readable.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from ordernotify.config import Settings
from ordernotify.errors import ConfigError

_HEX = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
WHITE = "#ffffff"
DARK_TEXT = "#111827"
DARK_BACKGROUND = "#111827"  # the message background in dark mode (templates/base.html.j2)
MIN_CONTRAST = 4.5  # WCAG 2 AA, normal text


def _rgb(color: str) -> tuple[int, int, int]:
    if not _HEX.match(color):
        raise ValueError(f"{color!r} is not a #rgb or #rrggbb colour")
    digits = color[1:]
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)


def _hex(rgb: Iterable[float]) -> str:
    return "#" + "".join(f"{round(max(0.0, min(255.0, c))):02x}" for c in rgb)


def relative_luminance(color: str) -> float:
    """WCAG 2 relative luminance of a ``#rrggbb`` colour, 0 (black) to 1 (white)."""

    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(v) for v in _rgb(color))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(foreground: str, background: str) -> float:
    """WCAG 2 contrast ratio, 1 to 21."""
    lighter, darker = sorted((relative_luminance(foreground), relative_luminance(background)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def readable_on(color: str, background: str, minimum: float = MIN_CONTRAST) -> str:
    """``color`` itself if readable on ``background``, else the nearest shade of it (towards black or white) that is."""
    if contrast_ratio(color, background) >= minimum:
        return _hex(_rgb(color))
    target = 0.0 if relative_luminance(background) > 0.18 else 255.0
    start = _rgb(color)
    for step in range(1, 21):
        mix = step / 20
        shade = _hex(c + (target - c) * mix for c in start)
        if contrast_ratio(shade, background) >= minimum:
            return shade
    return _hex((target, target, target))


def text_on(background: str) -> str:
    """White or near-black, whichever reads better on ``background`` (button labels)."""
    return WHITE if contrast_ratio(WHITE, background) >= contrast_ratio(DARK_TEXT, background) else DARK_TEXT


@dataclass(frozen=True, slots=True)
class ShopBranding:
    """The settings an e-mail shows; kept apart so rendering does not depend on Kafka or SMTP settings."""

    name: str
    url: str
    support_email: str
    default_locale: str = "en"
    logo_url: str = ""
    brand_color: str = "#1f5f8b"
    footer_address: str = ""
    support_phone: str = ""
    chat_url: str = ""
    faq_url: str = ""
    complaints_url: str = ""
    complaint_response_days: int = 30

    def __post_init__(self) -> None:
        if not _HEX.match(self.brand_color):
            raise ConfigError(f"--brand-color: {self.brand_color!r} is not a hex colour like #1f5f8b")
        if self.complaint_response_days < 1:
            raise ConfigError("--complaint-response-days must be at least 1")

    @classmethod
    def from_settings(cls, settings: Settings) -> ShopBranding:
        return cls(
            name=settings.shop_name,
            url=settings.shop_url.rstrip("/"),
            support_email=settings.support_email,
            default_locale=settings.default_locale,
            logo_url=settings.logo_url.strip(),
            brand_color=settings.brand_color.strip(),
            footer_address=settings.footer_address.strip(),
            support_phone=settings.support_phone.strip(),
            chat_url=settings.chat_url.strip(),
            faq_url=settings.faq_url.strip(),
            complaints_url=settings.complaints_url.strip(),
            complaint_response_days=settings.complaint_response_days,
        )

    def colors(self) -> dict[str, str]:
        """The colours the templates use; every text colour meets :data:`MIN_CONTRAST` on its background."""
        brand = _hex(_rgb(self.brand_color))
        return {
            "brand": brand,  # button background
            "button_text": text_on(brand),
            "brand_text": readable_on(brand, WHITE),  # headlines, links, secondary buttons
            "brand_text_dark": readable_on(brand, DARK_BACKGROUND),  # the same in dark mode
        }

    def context(self) -> dict[str, object]:
        """The ``shop`` variable of every template."""
        return {
            "name": self.name,
            "url": self.url,
            "support_email": self.support_email,
            "logo_url": self.logo_url,
            "footer_address": self.footer_address,
            "support_phone": self.support_phone,
            "support_phone_uri": "tel:" + re.sub(r"[^\d+]", "", self.support_phone) if self.support_phone else "",
            "chat_url": self.chat_url,
            "faq_url": self.faq_url,
            "complaints_url": self.complaints_url,
            "complaint_response_days": self.complaint_response_days,
            "colors": self.colors(),
        }
