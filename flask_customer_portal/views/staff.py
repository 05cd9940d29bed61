"""Staff pages the host protects with its own ``staff_decorator`` (Z3): share invite."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, abort, render_template, request

from ..access import create_portal_session
from ..links import static_link
from ..models import MODES
from ..records import get_customer
from .access import business_page
from .guard import or_404


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
    if mode not in MODES:
        abort(404)
    business = business_page(business_id)
    customer = or_404(get_customer(business, customer_id, mode=mode))
    dynamic = create_portal_session(customer) if request.method == "POST" else None
    return render_template(
        "customer_portal/staff/share_invite.html",
        business=business,
        customer=customer,
        mode=mode,
        static_link=static_link(business, mode),
        dynamic_link=dynamic,
    )
