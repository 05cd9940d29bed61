"""The brand's stylesheet and logo, for every page of a business."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort

from ..config import config_value
from ..theming import logo_media_type, theme_css
from .access import business_page


def register(blueprint: Blueprint) -> None:
    """Add the theme routes to ``blueprint``."""
    blueprint.add_url_rule("/theme/<business_id>.css", "theme", theme)
    blueprint.add_url_rule("/logo/<business_id>", "logo", logo)


def theme(business_id: str) -> Any:
    """The business's colours as CSS custom properties."""
    css = theme_css(business_page(business_id), accent=config_value("ACCENT_COLOR"))
    response = Response(css, mimetype="text/css")
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


def logo(business_id: str) -> Any:
    """The business's logo, straight from its record (never fetched from elsewhere)."""
    business = business_page(business_id)
    if business.logo is None:
        abort(404)
    response = Response(business.logo, mimetype=logo_media_type(business.logo))
    response.headers["Cache-Control"] = "public, max-age=300"
    return response
