"""The HTTP API for merchants' backends (placeholder until the API lands)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint


def create_blueprint(state: Any) -> Blueprint:
    """Build the API blueprint for one app."""
    return Blueprint("customer_portal_api", __name__)
