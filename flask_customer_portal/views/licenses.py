"""Pages: the customer's license keys."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, render_template

from . import customer_required, signed_in_customer


def register(blueprint: Blueprint) -> None:
    """Add these pages to ``blueprint``."""
    blueprint.add_url_rule("/license-keys", "license_keys", customer_required(license_keys))


def license_keys() -> Any:
    """Placeholder until the page lands."""
    return render_template("customer_portal/overview.html", customer=signed_in_customer())
