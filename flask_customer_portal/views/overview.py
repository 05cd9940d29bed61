"""The signed-in customer's home page."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template

from ..summary import account_summary
from .auth import customer_required, signed_in_customer


def register(blueprint: Blueprint) -> None:
    """Add the overview to ``blueprint``."""
    blueprint.add_url_rule("/", "overview", customer_required(overview))


def overview() -> Any:
    """Plans, what needs attention first, the latest invoices, and the way back."""
    customer = signed_in_customer()
    return render_template(
        "customer_portal/overview.html", customer=customer, summary=account_summary(customer)
    )
