"""The business's brand as CSS custom properties, and its logo.

The one stylesheet the package ships reads every colour from custom
properties; :func:`theme_css` sets the brand's own, with a text colour that
keeps enough contrast on it.
"""

from __future__ import annotations

from .models import Business

DEFAULT_BRAND = "#1a56db"


def _luminance(color: str) -> float:
    def channel(hex_pair: str) -> float:
        value = int(hex_pair, 16) / 255
        return value / 12.92 if value <= 0.03928 else ((value + 0.055) / 1.055) ** 2.4

    red, green, blue = (channel(color[i : i + 2]) for i in (1, 3, 5))
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def contrast_ratio(first: str, second: str) -> float:
    """Return the WCAG contrast ratio of two ``#rrggbb`` colours (1 to 21)."""
    lighter, darker = sorted((_luminance(first), _luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def readable_text_on(color: str) -> str:
    """Return white or near-black, whichever reads better on ``color``."""
    white, black = contrast_ratio("#ffffff", color), contrast_ratio("#111111", color)
    return "#ffffff" if white >= black else "#111111"


def readable_on_white(color: str) -> str:
    """Return ``color``, darkened just enough to read as text on white (4.5:1, WCAG AA)."""
    red, green, blue = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    for step in range(21):
        keep = 1 - step / 20
        shade = f"#{round(red * keep):02x}{round(green * keep):02x}{round(blue * keep):02x}"
        if contrast_ratio(shade, "#ffffff") >= 4.5:
            return shade
    return "#000000"


def theme_css(business: Business, *, accent: str | None) -> str:
    """Return the stylesheet that gives the portal ``business``'s colours."""
    brand = business.brand_color or DEFAULT_BRAND
    return (
        ":root {\n"
        f"  --cp-brand: {brand};\n"
        f"  --cp-brand-text: {readable_text_on(brand)};\n"
        f"  --cp-accent: {readable_on_white(accent or brand)};\n"
        "}\n"
    )


def logo_media_type(logo: bytes) -> str:
    """Return the media type of a stored logo (PNG or JPEG, as the data API accepts)."""
    return "image/png" if logo.startswith(b"\x89PNG") else "image/jpeg"
