"""Pages: the customer's profile, and confirming a new email address."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Blueprint, redirect, render_template, request, url_for
from flask_limiter import Limiter

from .. import access, links
from .. import profile as profiles
from ..config import config_value
from ..customers import display_phone
from ..errors import ValidationError
from ..models import Customer
from .access import LINK_HEADERS, business_page
from .auth import customer_required, login_url, sign_in, signed_in_customer, signed_in_recently
from .messages import error_message


def register(blueprint: Blueprint, limiter: Limiter) -> None:
    """Add these pages to ``blueprint``; opening a confirmation link is rate-limited (T9)."""
    redeem = limiter.limit(lambda: config_value("REDEEM_RATE_LIMIT"))(confirm_email)
    blueprint.add_url_rule(
        "/profile", "profile", customer_required(profile), methods=["GET", "POST"]
    )
    for mode, prefix, suffix in (("live", "", ""), ("test", "/test", "test_")):
        blueprint.add_url_rule(
            f"{prefix}/profile/email/<business_id>/<token>",
            f"{suffix}confirm_email",
            redeem,
            methods=["GET", "POST"],
            defaults={"mode": mode},
        )


def profile() -> Any:
    """Show the profile; a POST changes the name and phone, and asks to confirm a new email."""
    customer = signed_in_customer()
    if request.method == "GET":
        return _profile_page(customer)
    try:
        # Z2: only the profile's own fields are read from the form.
        update = profiles.update_profile(
            customer,
            **{field: request.form.get(field) for field in profiles.PROFILE_FIELDS},
            recent_sign_in=signed_in_recently(),
        )
    except profiles.ProfileErrors as failed:
        page = _profile_page(
            customer,
            errors={field: error_message(error) for field, error in failed.errors.items()},
            form=request.form,
            sign_in_again=any(
                error.code == "recent_sign_in_required" for error in failed.errors.values()
            ),
        )
        return page, 400
    email = "sent" if update.new_email else None  # None leaves it out of the URL
    return redirect(url_for("customer_portal.profile", saved=1, email=email), 303)


def _profile_page(
    customer: Customer,
    *,
    errors: dict[str, str] | None = None,
    form: Mapping[str, str] | None = None,
    sign_in_again: bool = False,
) -> str:
    shown = {"name": customer.name, "email": customer.email, "phone": display_phone(customer.phone)}
    # After an error, the form shows what was typed, to be corrected.
    values = {field: (form or {}).get(field, value) for field, value in shown.items()}
    return render_template(
        "customer_portal/profile.html",
        customer=customer,
        values=values,
        errors=errors or {},
        sign_in_again=sign_in_again,
        login_link=login_url(customer.business.public_id, customer.mode),
    )


def confirm_email(business_id: str, token: str, mode: str) -> Any:
    """The link mailed to a new address: GET asks to confirm (T6); only the POST uses it.

    It works on any browser. Confirming ends every session of the customer
    (T11) and signs this browser in afresh: the link proves the new address.
    """
    business = business_page(business_id)
    context = {"business": business, "mode": mode}
    if request.method == "POST":
        try:
            changed = profiles.confirm_email_change(business, mode, token)
        except ValidationError:
            page = render_template("customer_portal/confirm_email.html", state="taken", **context)
            return page, 409, LINK_HEADERS
        if changed is not None:
            sign_in(access.start_session(changed.customer, method="link"))
            response = redirect(url_for("customer_portal.profile", email="changed"), 303)
            response.headers.update(LINK_HEADERS)
            return response
    else:
        new_email = links.pending_email_change(business, mode, token)
        if new_email is not None:
            page = render_template(
                "customer_portal/confirm_email.html",
                state="confirm",
                new_email=new_email,
                **context,
            )
            return page, 200, LINK_HEADERS
    page = render_template("customer_portal/confirm_email.html", state="invalid", **context)
    return page, 410, LINK_HEADERS
