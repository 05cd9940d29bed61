"""The portal's HTML pages: the customer's, the staff's, and the test provider's.

Views are thin: they parse the request, call one domain function and render.
Each page module adds its routes to a blueprint made by
:func:`.guard.guarded_blueprint`; :func:`register_views` mounts them all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask

from ..providers.stripe import StripeProvider
from ..state import PortalState
from . import (
    access,
    billing,
    cards,
    guard,
    health,
    language,
    licenses,
    overview,
    pay_invoice,
    payments,
    profile,
    staff,
    stripe_provider,
    subscriptions,
    test_provider,
    theme,
)
from .auth import current_customer

__all__ = ["current_customer", "register_views"]


def register_views(
    app: Flask,
    state: PortalState,
    *,
    prefix: str,
    staff_decorator: Callable[[Callable[..., Any]], Callable[..., Any]] | None,
) -> None:
    """Register the portal's pages on ``app`` under ``prefix``, with the app's rate limits."""
    # The customer's pages also serve the portal's stylesheet and script.
    pages = guard.guarded_blueprint(
        "customer_portal", static_folder="../static", static_url_path="/static"
    )
    limiter = state.limiter
    access.register(pages, limiter, bridge=state.host_customer is not None)
    profile.register(pages, limiter)
    health.register(pages, limiter)
    for module in (theme, overview, billing, subscriptions, payments, pay_invoice, cards):
        module.register(pages)
    for module in (licenses, language):
        module.register(pages)
    app.register_blueprint(pages, url_prefix=prefix)
    app.register_blueprint(test_provider.blueprint(), url_prefix=prefix + "/test-provider")
    if any(isinstance(p, StripeProvider) for p in (state.provider, state.test_provider)):
        app.register_blueprint(stripe_provider.blueprint(), url_prefix=prefix + "/stripe")
    if staff_decorator is not None:
        staff_pages = guard.guarded_blueprint("customer_portal_staff")
        staff.register(staff_pages, staff_decorator)
        app.register_blueprint(staff_pages, url_prefix=prefix)
    # Every other path under the prefix: the portal's 404 page, with its headers.
    app.register_blueprint(guard.unrouted_blueprint(), url_prefix=prefix)
