"""What every page of the portal gets: the request checks, the headers, the context, errors.

:func:`guarded_blueprint` is the one recipe for the portal's blueprints: every
POST carries a CSRF token (C1), forms are capped in size (V1) and refused
when they hold a card number (P1), every response carries the security
headers (C3), and every error is a generic page of the portal's (V3).
"""

from __future__ import annotations

import math
import secrets
import time
from typing import Any, TypeVar

from flask import Blueprint, Response, abort, g, render_template, request, session
from flask_wtf.csrf import CSRFError, generate_csrf, validate_csrf
from werkzeug.exceptions import HTTPException
from wtforms.validators import ValidationError as CSRFValidationError

from .. import formatting, i18n, validation
from ..config import config_value
from ..errors import ValidationError
from ..proxies import portal
from .auth import SESSION_TOKEN, current_portal_session

#: The largest form the portal's pages accept (V1); none of them needs more.
MAX_FORM_BYTES = 64 * 1024

#: The category of the portal's flashed messages, so a host's own stay apart.
FLASH = "customer_portal"

#: What a customer sees when a form value looks like a card number (P1).
CARD_NUMBER_REFUSED = i18n.N_(
    "That looks like a card number. For your security we never accept card numbers on "
    "these pages, and nothing was saved. Go back and remove it; cards are added only on "
    "the payment provider's secure page."
)

_T = TypeVar("_T")


def guarded_blueprint(name: str, *, refuse_card_numbers: bool = True, **options: Any) -> Blueprint:
    """Return a blueprint of the portal's, with its checks, headers, context and error pages.

    :param refuse_card_numbers: ``False`` only for the one form meant to take
        a card number: the test provider's card page.
    :param options: more arguments of :class:`~flask.Blueprint`.
    """
    blueprint = Blueprint(name, __name__, template_folder="../templates", **options)
    blueprint.before_request(_check_request)
    if refuse_card_numbers:
        blueprint.before_request(_refuse_card_numbers)
    blueprint.after_request(_security_headers)
    blueprint.context_processor(_context)
    blueprint.register_error_handler(HTTPException, _error_page)
    return blueprint


def or_404(found: _T | None) -> _T:
    """Return what a look-up found, or answer 404 (Z1: someone else's object is not found)."""
    if found is None:
        abort(404)
    return found


def csp_nonce() -> str:
    """Return this response's nonce for inline ``<script nonce=...>`` (C3)."""
    if "customer_portal_nonce" not in g:
        g.customer_portal_nonce = secrets.token_urlsafe(16)
    nonce: str = g.customer_portal_nonce
    return nonce


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


def _error_page(error: HTTPException) -> tuple[str, int]:
    if error.code == 429:
        breached = [limit.reset_at for limit in portal.limiter.current_limits if limit.breached]
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
