"""Pages: the customer's profile, and confirming a new email address."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, redirect, render_template, request, url_for
from flask_limiter import Limiter

from .. import access, customers
from ..config import config_value
from ..errors import ValidationError
from ..i18n import N_, gettext
from ..models import Customer
from . import current_portal_session, customer_required, login_url, sign_in, signed_in_customer
from .access import LINK_HEADERS, _business


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
    portal_session = current_portal_session()
    assert portal_session is not None
    try:
        # Z2: only the profile's own fields are read from the form.
        update = customers.update_profile(
            customer,
            **{field: request.form.get(field) for field in customers.PROFILE_FIELDS},
            recent_sign_in=access.is_recent(portal_session),
        )
    except customers.ProfileErrors as error:
        page = _profile_page(
            customer,
            errors={field: _sentence(field, message) for field, message in error.errors.items()},
            form=request.form,
            sign_in_again=error.sign_in_again,
        )
        return page, 400
    email = "sent" if update.new_email else None  # None leaves it out of the URL
    return redirect(url_for("customer_portal.profile", saved=1, email=email), 303)


#: What the customer reads for :func:`customers.update_profile`'s messages:
#: (field, how the message starts, the sentence).
_SENTENCES = (
    ("name", "looks like a card number", N_("Name looks like a card number; never type one here.")),
    ("name", "must be at most", N_("Name must be at most %(count)s characters.")),
    ("name", "must not contain control", N_("Name must not contain control characters.")),
    ("email", "is required", N_("Email address is required.")),
    (
        "email",
        "can only be changed soon",
        N_("Email address can only be changed soon after you sign in."),
    ),
    (
        "email",
        "belongs to another account",
        N_("Email address belongs to another account; use another address."),
    ),
    ("phone", "is not a valid", N_("Phone is not a valid phone number.")),
    (
        "phone",
        "is not a phone number",
        N_("Phone is not a phone number; include the country code, like +55 11 98765-4321."),
    ),
)
#: The sentence for any other message of a field.
_FALLBACKS = {
    "name": N_("Name is not valid."),
    "email": N_("Email address is not a valid email address."),
    "phone": N_("Phone is not a valid phone number."),
}


def _sentence(field: str, message: str) -> str:
    """Return the full, translated sentence for a profile field's error message."""
    sentence = next(
        (s for name, start, s in _SENTENCES if name == field and message.startswith(start)),
        _FALLBACKS.get(field, _FALLBACKS["name"]),
    )
    count = re.search(r"\d+", message)
    return gettext(sentence, count=count.group() if count else "")


def _profile_page(
    customer: Customer,
    *,
    errors: dict[str, str] | None = None,
    form: Mapping[str, str] | None = None,
    sign_in_again: bool = False,
) -> str:
    shown = {
        "name": customer.name,
        "email": customer.email,
        "phone": customers.display_phone(customer.phone),
    }
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
    business = _business(business_id)
    context = {"business": business, "mode": mode}
    if request.method == "POST":
        try:
            changed = customers.confirm_email_change(business, mode, token)
        except ValidationError:
            page = render_template("customer_portal/confirm_email.html", state="taken", **context)
            return page, 409, LINK_HEADERS
        if changed is not None:
            session_token = access.start_session(changed.customer)
            portal_session = access.load_session(session_token)
            assert portal_session is not None
            sign_in(session_token, portal_session)
            response = redirect(url_for("customer_portal.profile", email="changed"), 303)
            response.headers.update(LINK_HEADERS)
            return response
    else:
        new_email = access.pending_email_change(business, mode, token)
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
