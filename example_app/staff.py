"""The staff pages: sign in and out, the customer list and a customer's records."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user
from werkzeug.wrappers import Response

from flask_customer_portal import get_business, get_customer

from . import BUSINESS_ID, MODE, queries
from .auth import authenticate, check_csrf, csrf_token, local_path

bp = Blueprint("staff", __name__, url_prefix="/staff")
bp.before_request(check_csrf)
bp.add_app_template_global(csrf_token)


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | str | tuple[str, int]:
    """Show the sign-in form; sign in and go on to the page asked for."""
    if current_user.is_authenticated:
        return redirect(url_for(".customers"))
    email = request.form.get("email", "")
    if request.method == "POST":
        staff = authenticate(email, request.form.get("password", ""))
        if staff is not None:
            login_user(staff)
            return redirect(local_path(request.args.get("next")) or url_for(".customers"))
        return render_template("staff/login.html", email=email, failed=True), 401
    return render_template("staff/login.html", email=email, failed=False)


@bp.post("/logout")
@login_required
def logout() -> Response:
    """Sign out and go back to the store's home page."""
    logout_user()
    flash("You are signed out.")
    return redirect(url_for("store.home"))


@bp.get("/")
@login_required
def customers() -> str:
    """List the business's customers, 50 a page, optionally searched by email."""
    business = get_business(BUSINESS_ID)
    search = request.args.get("q", "").strip()
    listing = None
    if business is not None:
        number = request.args.get("page", 1, type=int)
        listing = queries.customers_page(business, mode=MODE, search=search, page=number)
    return render_template(
        "staff/customers.html", business=business, listing=listing, search=search
    )


@bp.get("/customers/<public_id>")
@login_required
def customer(public_id: str) -> str:
    """Show one customer's details, subscriptions, invoices and license keys."""
    business = get_business(BUSINESS_ID)
    found = get_customer(business, public_id, mode=MODE) if business is not None else None
    if found is None:
        abort(404)
    return render_template(
        "staff/customer.html", customer=found, records=queries.customer_records(found)
    )
