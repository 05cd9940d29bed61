"""The store's public pages, and the template filters every page uses."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from babel.numbers import format_currency, get_currency_precision
from flask import Blueprint, abort, current_app, render_template, url_for

from flask_customer_portal import local_messages

from . import BUSINESS_ID, MODE

bp = Blueprint("store", __name__)


@bp.get("/")
def home() -> str:
    """Show the store's home page, with where the staff pages and the portal live."""
    return render_template("home.html", portal_login_path=portal_login_path())


@bp.get("/dev/mail")
def dev_mail() -> str:
    """Show the mail the portal sent, when there is no mail server (development only)."""
    if not (current_app.debug or current_app.testing):
        abort(404)
    return render_template("dev_mail.html", messages=local_messages())


def portal_login_path() -> str:
    """Return the path of the portal's static login page for the store's business."""
    endpoint = "customer_portal.test_login" if MODE == "test" else "customer_portal.login"
    return url_for(endpoint, business_id=BUSINESS_ID)


@bp.app_template_filter("money")
def money(amount: int, currency: str) -> str:
    """Format an amount of minor units, such as ``2900, "USD"`` as ``$29.00``."""
    units = Decimal(amount).scaleb(-get_currency_precision(currency))
    return format_currency(units, currency, locale="en_US")


@bp.app_template_filter("day")
def day(moment: datetime | None) -> str:
    """Format a timestamp as its UTC date, or a dash when there is none."""
    return f"{moment:%Y-%m-%d}" if moment is not None else "—"
