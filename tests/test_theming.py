"""Theming: the host's templates win, a base layout of its own, the brand's colours and logo."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from flask import Flask

import flask_customer_portal as portal
from flask_customer_portal.theming import contrast_ratio, readable_on_white, readable_text_on

TEMPLATES = Path(__file__).parent / "templates"
PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00"
    b"\x00\x00\x00IEND\xaeB`\x82"
)


def host_app(app_factory: Callable[..., Flask], database_url: str, **config: object) -> Flask:
    app = app_factory(database_url, **config)
    app.template_folder = str(TEMPLATES)
    with app.app_context():
        portal.create_business("Acme Cloud", public_id="acme", brand_color="#fde047", logo=PNG)
    return app


def test_a_template_in_the_hosts_folder_wins(
    app_factory: Callable[..., Flask], database_url: str
) -> None:
    client = host_app(app_factory, database_url).test_client()
    page = client.get("/portal/test/login/acme").text
    assert "Welcome back to Acme Cloud, the overridden way" in page
    assert "Test mode" in page  # the rest of the layout is still the portal's


def test_pages_extend_the_base_template_named_in_the_settings(
    app_factory: Callable[..., Flask], database_url: str
) -> None:
    app = host_app(app_factory, database_url, CUSTOMER_PORTAL_BASE_TEMPLATE="shop_layout.html")
    page = app.test_client().get("/portal/login/acme/unknown-token").text
    assert "Shop footer from the host's own layout" in page
    assert "expired or was already used" in page


def test_the_brand_colours_and_logo_come_from_the_business(
    app_factory: Callable[..., Flask], database_url: str
) -> None:
    app = host_app(
        app_factory,
        database_url,
        CUSTOMER_PORTAL_ACCENT_COLOR="#7c3aed",
        CUSTOMER_PORTAL_COLOR_SCHEME="dark",
    )
    client = app.test_client()
    page = client.get("/portal/test/login/acme").text
    assert 'href="/portal/theme/acme.css"' in page
    assert 'data-cp-scheme="dark"' in page
    css = client.get("/portal/theme/acme.css")
    assert css.mimetype == "text/css"
    # A light yellow brand gets dark text: enough contrast either way.
    assert "--cp-brand: #fde047;" in css.text and "--cp-brand-text: #111111;" in css.text
    assert "--cp-accent: #7c3aed;" in css.text  # dark enough on white already
    logo = client.get("/portal/logo/acme")
    assert (logo.mimetype, logo.data) == ("image/png", PNG)
    assert client.get("/portal/logo/nobody").status_code == 404


def test_text_on_the_brand_colour_stays_readable() -> None:
    assert readable_text_on("#1a56db") == "#ffffff"
    assert readable_text_on("#fde047") == "#111111"
    assert readable_text_on("#000000") == "#ffffff"


def test_the_payment_providers_origins_may_receive_the_portals_forms(
    app_factory: Callable[..., Flask], database_url: str
) -> None:
    """C3: the provider's hosted pages may receive the portal's forms once named."""
    app = host_app(
        app_factory, database_url, CUSTOMER_PORTAL_PROVIDER_ORIGINS=["https://pay.example.com"]
    )
    page = app.test_client().get("/portal/test/login/acme")
    assert "form-action 'self' https://pay.example.com;" in page.headers["Content-Security-Policy"]


def test_links_in_a_light_brand_colour_are_darkened_until_they_read_on_white() -> None:
    """Sufficient contrast: links and focus rings use the accent on white (4.5:1)."""
    for color in ("#fde047", "#22d3ee", "#1a56db", "#ffffff"):
        darker = readable_on_white(color)
        assert contrast_ratio(darker, "#ffffff") >= 4.5, (color, darker)
    assert readable_on_white("#1a56db") == "#1a56db"
