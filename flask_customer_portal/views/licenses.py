"""Pages: the customer's license keys."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template

from ..licenses import customer_license_keys
from .auth import customer_required, signed_in_customer


def register(blueprint: Blueprint) -> None:
    """Add these pages to ``blueprint``."""
    blueprint.add_url_rule("/license-keys", "license_keys", customer_required(license_keys))


def license_keys() -> Any:
    """Every key of the signed-in customer, masked until revealed, with a copy button."""
    customer = signed_in_customer()
    return render_template(
        "customer_portal/license_keys.html",
        customer=customer,
        keys=customer_license_keys(customer),
    )
