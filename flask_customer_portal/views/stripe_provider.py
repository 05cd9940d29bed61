"""The Stripe provider's pages: card entry with Stripe.js, and the 3-D Secure step.

Mounted at ``<URL_PREFIX>/stripe`` when a :class:`~..providers.stripe.StripeProvider`
serves a mode. The card number is typed into Stripe's own field (Stripe.js),
which sends it to Stripe, never to this server (P1); the page's CSP lets
Stripe.js, Stripe's API and its 3-D Secure frames in, and nothing else. As on
the test provider's pages, the random ids in the URLs are the credentials.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, render_template

from ..i18n import current_locale
from ..models import MODES
from ..providers.stripe import StripePage, StripeProvider
from ..proxies import portal
from .guard import allow_sources, guarded_blueprint, or_404


def blueprint() -> Blueprint:
    """Build the Stripe provider's pages, with the portal's checks and security headers."""
    pages = guarded_blueprint("customer_portal_stripe")
    pages.add_url_rule("/<mode>/setup/<setup_intent_id>", "setup", setup)
    pages.add_url_rule("/<mode>/authenticate/<payment_intent_id>", "authenticate", authenticate)
    return pages


def _provider(mode: str) -> StripeProvider:
    if mode not in MODES:
        abort(404)
    provider = portal.provider if mode == "live" else portal.test_provider
    if not isinstance(provider, StripeProvider):
        abort(404)
    allow_sources(**provider.origins)
    return provider


def _render(template: str, provider: StripeProvider, page: StripePage) -> Any:
    return render_template(
        template,
        page=page,
        publishable_key=provider.publishable_key,
        js_url=provider.js_url,
        stripe_locale=current_locale().replace("_", "-"),
        mode=provider.mode,
    )


def setup(mode: str, setup_intent_id: str) -> Any:
    """The card page: Stripe.js saves the card, then the customer goes back to the portal."""
    provider = _provider(mode)
    page = or_404(provider.card_page(setup_intent_id))
    return _render("customer_portal/stripe/setup.html", provider, page)


def authenticate(mode: str, payment_intent_id: str) -> Any:
    """The 3-D Secure page: Stripe.js runs the bank's check, then back to the portal."""
    provider = _provider(mode)
    page = or_404(provider.authentication_page(payment_intent_id))
    return _render("customer_portal/stripe/authenticate.html", provider, page)
