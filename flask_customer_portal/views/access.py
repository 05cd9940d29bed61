"""Pages: the static login page, opening a link, signing out, the host login bridge."""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

from .. import access, deep_links, links
from ..businesses import get_business
from ..config import config_value
from ..errors import ValidationError
from ..i18n import gettext
from ..models import Business
from ..proxies import portal
from ..validation import email as valid_email
from .auth import SESSION_HOME, SESSION_TOKEN, current_portal_session, login_url, sign_in
from .guard import or_404

#: Link pages must not leak their URL (it holds the token) nor be cached (T7).
LINK_HEADERS = {"Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}


def register(blueprint: Blueprint, limiter: Limiter, *, bridge: bool) -> None:
    """Add the sign-in routes to ``blueprint`` with the app's rate limits (T9)."""
    per_ip = limiter.limit(lambda: config_value("LOGIN_RATE_LIMIT_IP"), methods=["POST"])
    # Per email, one client IP's requests are counted apart from the others', so
    # whoever asks too often is refused, not the email's owner. A higher ceiling
    # holds for all IPs together, counting only the requests answered (refused
    # ones would let one IP reach it alone). Both count per business (and mode:
    # each mode has its endpoint, which scopes its limits).
    per_email_and_ip = limiter.limit(
        lambda: config_value("LOGIN_RATE_LIMIT_EMAIL"),
        methods=["POST"],
        key_func=lambda: _email_key() + ":ip:" + get_remote_address(),
    )
    per_email = limiter.limit(
        lambda: config_value("LOGIN_RATE_LIMIT_EMAIL_ALL_IPS"),
        methods=["POST"],
        key_func=_email_key,
        deduct_when=lambda response: response.status_code == 200,
    )
    redeem = limiter.limit(lambda: config_value("REDEEM_RATE_LIMIT"))
    request_view = per_ip(per_email_and_ip(per_email(request_link)))
    open_view = redeem(open_link)
    for mode, prefix, suffix in (("live", "", ""), ("test", "/test", "test_")):
        blueprint.add_url_rule(
            f"{prefix}/login/<business_id>",
            f"{suffix}login",
            request_view,
            methods=["GET", "POST"],
            defaults={"mode": mode},
        )
        blueprint.add_url_rule(
            f"{prefix}/login/<business_id>/<token>",
            f"{suffix}open_link",
            open_view,
            methods=["GET", "POST"],
            defaults={"mode": mode},
        )
    blueprint.add_url_rule("/logout", "logout", logout, methods=["POST"])
    if bridge:
        blueprint.add_url_rule("/from-host", "from_host", from_host, methods=["GET", "POST"])


def business_page(business_id: str) -> Business:
    """Return the business a page's URL names, or answer 404."""
    return or_404(get_business(business_id))


def _email_key() -> str:
    typed = request.form.get("email", "")
    try:
        address = valid_email("email", typed)
    except ValidationError:
        address = typed.strip().lower()[:254]
    business_id = (request.view_args or {}).get("business_id", "")
    return f"email:{business_id[:64]}:{address}"


def request_link(business_id: str, mode: str) -> Any:
    """The static link: type your email, get a sign-in link (T8: one answer for all)."""
    business = business_page(business_id)
    # The page a signed-out visitor asked for, kept through the form to the emailed
    # link; anything but a portal path is dropped (no open redirect, V1).
    given = request.form if request.method == "POST" else request.args
    next_path = _portal_path(given.get("next"))
    context = {
        "business": business,
        "mode": mode,
        "expired": "expired" in request.args,
        "next_path": next_path,
    }
    if request.method == "GET":
        return render_template("customer_portal/login.html", **context)
    try:
        address = valid_email("email", request.form.get("email", ""))
    except ValidationError:
        error = gettext("Enter the email address you used when you bought.")
        return render_template("customer_portal/login.html", error=error, **context), 400
    access.request_login_link(business, mode, address, next_path=next_path)
    portal.session.commit()
    return render_template("customer_portal/login_sent.html", **context)


def open_link(business_id: str, token: str, mode: str) -> Any:
    """A sign-in link: GET shows "Continue" (T6); only the POST uses the link (T3)."""
    business = business_page(business_id)
    context = {"business": business, "mode": mode}
    if request.method == "POST":
        opened = access.redeem_link(business, mode, token)
        if opened is not None:
            sign_in(opened)
            next_path = _portal_path(opened.next_path)
            target = request.script_root + next_path if next_path else None
            response = redirect(target or url_for("customer_portal.overview"), 303)
            response.headers.update(LINK_HEADERS)
            return response
    elif links.link_is_valid(business, mode, token):
        return render_template("customer_portal/continue.html", **context), 200, LINK_HEADERS
    page = render_template("customer_portal/link_invalid.html", **context)
    return page, 410, LINK_HEADERS


def _portal_path(path: str | None) -> str | None:
    """Return ``path`` if it is a portal page a sign-in may lead to, else ``None``."""
    if path is None:
        return None
    try:
        return deep_links.check_next_path(path)
    except ValidationError:
        return None


def logout() -> Any:
    """Sign out: end the session on the server too (T11)."""
    portal_session = current_portal_session()
    token = session.pop(SESSION_TOKEN, None)
    if isinstance(token, str):
        access.end_session(token)
    session.pop(SESSION_HOME, None)
    if portal_session is None:
        return render_template("customer_portal/signed_out.html"), 401
    business = portal_session.customer.business
    return redirect(login_url(business.public_id, portal_session.mode, signed_out=1), 303)


def from_host() -> Any:
    """The host login bridge: the host's signed-in user continues into their portal."""
    from flask_login import current_user

    if not current_user.is_authenticated:
        return current_app.login_manager.unauthorized()  # type: ignore[attr-defined]
    assert portal.host_customer is not None
    customer = portal.host_customer(current_user)
    if customer is None:
        abort(404)
    if request.method == "GET":
        return render_template(
            "customer_portal/continue.html", business=customer.business, mode=customer.mode
        )
    # The host's own login lives in the same cookie: keep it (the portal
    # session token itself is new, so nothing can be fixed in advance).
    sign_in(access.start_session(customer), clear=False)
    return redirect(url_for("customer_portal.overview"), 303)
