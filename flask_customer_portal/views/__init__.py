"""The customer-facing pages: a blueprint built per app by :func:`create_blueprint`.

Views are thin: they parse the request, call one domain function and render.
Every POST carries a CSRF token (C1); every response carries the security
headers of :func:`_security_headers` (C3).
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_wtf.csrf import CSRFError, generate_csrf, validate_csrf
from werkzeug.exceptions import HTTPException
from werkzeug.local import LocalProxy
from wtforms.validators import ValidationError as CSRFValidationError

from .. import formatting, i18n, signals, validation
from ..access import load_session
from ..config import config_value
from ..errors import ValidationError
from ..models import Customer, PortalSession

#: Keys of the portal in the Flask session: the session token, and which
#: business and mode it was for (to send an expired visitor to the right login page).
SESSION_TOKEN = "_customer_portal"
SESSION_HOME = "_customer_portal_home"


def current_portal_session() -> PortalSession | None:
    """Return the signed-in customer's live server-side session, or ``None``."""
    if "customer_portal_session" not in g:
        token = session.get(SESSION_TOKEN)
        g.customer_portal_session = load_session(token) if isinstance(token, str) else None
    return g.customer_portal_session


def _current_customer() -> Customer | None:
    portal_session = current_portal_session()
    return portal_session.customer if portal_session else None


#: The signed-in portal customer, or ``None``. Never the host's ``current_user``.
current_customer: Customer | None = LocalProxy(_current_customer)  # type: ignore[assignment]


def customer_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """Let only a signed-in portal customer through; others go to their sign-in page."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if current_portal_session() is None:
            home = session.get(SESSION_HOME)
            session.pop(SESSION_TOKEN, None)
            if isinstance(home, list) and len(home) == 2:
                business_id, mode = home
                return redirect(login_url(business_id, mode, expired=True))
            return render_template("customer_portal/signed_out.html"), 401
        return view(*args, **kwargs)

    return wrapper


def login_url(business_id: str, mode: str, **params: Any) -> str:
    """Return the (relative) static login page of a business in a mode."""
    endpoint = "customer_portal.test_login" if mode == "test" else "customer_portal.login"
    return url_for(endpoint, business_id=business_id, **params)


def sign_in(token: str, portal_session: PortalSession, *, clear: bool = True) -> None:
    """Put a fresh portal session in the browser's session cookie.

    ``clear`` empties the Flask session first (T10: nothing planted before
    sign-in survives it).
    """
    if clear:
        session.clear()
    session[SESSION_TOKEN] = token
    session[SESSION_HOME] = [portal_session.customer.business.public_id, portal_session.mode]
    g.customer_portal_session = portal_session
    signals.customer_signed_in.send(
        current_app._get_current_object(),  # type: ignore[attr-defined]
        customer=portal_session.customer,
        method="link" if clear else "host",
    )


def csp_nonce() -> str:
    """Return this response's nonce for inline ``<script nonce=...>`` (C3)."""
    if "customer_portal_nonce" not in g:
        g.customer_portal_nonce = secrets.token_urlsafe(16)
    return g.customer_portal_nonce


#: The largest form the portal's pages accept (V1); none of them needs more.
MAX_FORM_BYTES = 64 * 1024


def _check_request() -> None:
    if (request.content_length or 0) > MAX_FORM_BYTES:
        abort(413)
    if request.method in ("POST", "PUT", "PATCH", "DELETE"):
        try:
            validate_csrf(request.form.get("csrf_token"))
        except (CSRFError, CSRFValidationError):
            abort(
                400,
                description=i18n.gettext(
                    "This form has expired. Go back, reload the page and try again."
                ),
            )


#: What a customer sees when a form value looks like a card number (P1).
CARD_NUMBER_REFUSED = i18n.N_(
    "That looks like a card number. For your security we never accept card numbers on "
    "these pages, and nothing was saved. Go back and remove it; cards are added only on "
    "the payment provider's secure page."
)


def _refuse_card_numbers() -> None:
    # P1: a card number typed or pasted into any portal form is refused before a
    # view (or a log line, or the database) sees it. A value written with a
    # leading "+" is a phone number in international notation, never a card.
    for name, value in request.form.items(multi=True):
        if value.lstrip().startswith("+"):
            continue
        try:
            validation.not_a_card_number(name, value)
        except ValidationError:
            abort(400, description=i18n.gettext(CARD_NUMBER_REFUSED))


def _security_headers(response: Response) -> Response:
    nonce = g.get("customer_portal_nonce")
    script = f"'self' 'nonce-{nonce}'" if nonce else "'self'"
    # A form may lead to the payment provider's pages (Chrome checks redirects too).
    forms = " ".join(["'self'", *config_value("PROVIDER_ORIGINS")])
    response.headers.setdefault(
        "Content-Security-Policy",
        f"default-src 'self'; script-src {script}; style-src 'self'; img-src 'self' data:; "
        f"object-src 'none'; base-uri 'none'; form-action {forms}; frame-ancestors 'none'",
    )
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def _context() -> dict[str, Any]:
    portal_session = current_portal_session() if SESSION_TOKEN in session else None
    customer = portal_session.customer if portal_session else None
    # The page's language, money and dates all follow one locale (see language.select_locale).
    locale = i18n.current_locale()
    return {
        **i18n.template_helpers(),
        "csrf_token": generate_csrf,
        "csp_nonce": csp_nonce,
        "current_customer": customer,
        "portal_session": portal_session,
        "portal_prefix": config_value("URL_PREFIX"),
        "customer_portal_base": config_value("BASE_TEMPLATE"),
        "color_scheme": config_value("COLOR_SCHEME"),
        "locale": locale,
        "money": lambda amount, currency: formatting.money(amount, currency, locale),
        "format_date": lambda moment, style="medium": formatting.date(moment, locale, style),
    }


def signed_in_customer() -> Customer:
    """Return the signed-in customer inside a :func:`customer_required` view."""
    portal_session = current_portal_session()
    assert portal_session is not None, "use customer_required"
    return portal_session.customer


def _error_page(error: HTTPException) -> tuple[str, int]:
    if error.code == 429:
        limiter = current_app.extensions["customer_portal"].limiter
        breached = [limit.reset_at for limit in limiter.current_limits if limit.breached]
        # reset_at is a whole second, rounded up: drop that second before rounding.
        seconds = max(breached, default=0) - time.time() - 1
        minutes = max(1, math.ceil(seconds / 60))
        body = render_template("customer_portal/rate_limited.html", minutes=minutes)
        return body, 429
    # V3: a generic page for every error, 500 included; Flask logs the traceback.
    # Only the portal's own descriptions (translated where raised) are shown;
    # Werkzeug's defaults are English, so the page has its own words for them.
    own = error.description != type(error).description
    body = render_template(
        "customer_portal/error.html", error=error, description=error.description if own else None
    )
    return body, error.code or 500


def create_blueprint(state: Any, portal: Any) -> Blueprint:
    """Build the portal's blueprint for one app, with that app's rate limits."""
    from . import (
        access,
        billing,
        language,
        licenses,
        overview,
        payments,
        profile,
        subscriptions,
        theme,
    )

    blueprint = Blueprint(
        "customer_portal",
        __name__,
        template_folder="../templates",
        static_folder="../static",
        static_url_path="/static",
    )
    blueprint.before_request(_check_request)
    blueprint.before_request(_refuse_card_numbers)
    blueprint.after_request(_security_headers)
    blueprint.context_processor(_context)
    blueprint.register_error_handler(HTTPException, _error_page)
    access.register(blueprint, state.limiter, bridge=state.host_customer is not None)
    profile.register(blueprint, state.limiter)
    for pages in (theme, overview, billing, subscriptions, payments, licenses, language):
        pages.register(blueprint)
    return blueprint


def create_staff_blueprint(staff_decorator: Callable[..., Any]) -> Blueprint:
    """Build the staff pages (share invite), each wrapped in the host's ``staff_decorator``."""
    from . import staff

    blueprint = Blueprint("customer_portal_staff", __name__, template_folder="../templates")
    blueprint.before_request(_check_request)
    blueprint.before_request(_refuse_card_numbers)
    blueprint.after_request(_security_headers)
    blueprint.context_processor(_context)
    staff.register(blueprint, staff_decorator)
    return blueprint
