"""Staff pages the host protects with its own ``staff_decorator`` (Z3): share invite."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, abort, render_template, request

from ..access import create_portal_session, link_url
from ..businesses import get_business
from ..config import MODES
from ..customers import get_customer


def register(blueprint: Blueprint, staff_decorator: Callable[..., Any]) -> None:
    """Add the share-invite page, wrapped in the host's ``staff_decorator``."""
    blueprint.add_url_rule(
        "/staff/<mode>/<business_id>/customers/<customer_id>/invite",
        "share_invite",
        staff_decorator(share_invite),
        methods=["GET", "POST"],
    )


def share_invite(mode: str, business_id: str, customer_id: str) -> Any:
    """Show the customer's static link; POST generates a fresh dynamic link."""
    business = get_business(business_id)
    if mode not in MODES or business is None:
        abort(404)
    customer = get_customer(business, customer_id, mode=mode)
    if customer is None:
        abort(404)
    dynamic = create_portal_session(customer) if request.method == "POST" else None
    return render_template(
        "customer_portal/staff/share_invite.html",
        business=business,
        customer=customer,
        mode=mode,
        static_link=link_url(business, mode),
        dynamic_link=dynamic,
    )
