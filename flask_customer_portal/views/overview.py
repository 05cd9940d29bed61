"""The signed-in customer's home page."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template

from . import current_portal_session, customer_required


def register(blueprint: Blueprint) -> None:
    """Add the overview to ``blueprint``."""
    blueprint.add_url_rule("/", "overview", customer_required(overview))


def overview() -> Any:
    """Who is signed in, and the way back to the merchant's site."""
    portal_session = current_portal_session()
    assert portal_session is not None
    return render_template("customer_portal/overview.html", customer=portal_session.customer)
