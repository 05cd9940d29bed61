"""The staff pages: sign in and out, the customer list and a customer's records."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf.csrf import generate_csrf
from werkzeug.wrappers import Response

from flask_customer_portal import get_business, get_customer

from . import BUSINESS_ID, MODE, queries
from .auth import SignInForm, SignOutForm, authenticate, local_path

bp = Blueprint("staff", __name__, url_prefix="/staff")
# For the sign-out button of every page, as Flask-WTF's CSRFProtect would add it.
bp.add_app_template_global(generate_csrf, "csrf_token")


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | str | tuple[str, int]:
    """Show the sign-in form; sign in and go on to the page asked for."""
    if current_user.is_authenticated:
        return redirect(url_for(".customers"))
    form = SignInForm()
    if not form.validate_on_submit():
        return render_template("staff/login.html", form=form), 400 if form.errors else 200
    staff = authenticate(form.email.data or "", form.password.data or "")
    if staff is None:
        return render_template("staff/login.html", form=form, refused=True), 401
    login_user(staff)
    return redirect(local_path(request.args.get("next")) or url_for(".customers"))


@bp.post("/logout")
@login_required
def logout() -> Response:
    """Sign out and go back to the store's home page."""
    if not SignOutForm().validate_on_submit():
        abort(400)
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
    return render_template("staff/customers.html", listing=listing, search=search)


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
