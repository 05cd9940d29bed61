"""What every page of the portal gets: the request checks, the headers, the context, errors.

:func:`guarded_blueprint` is the one recipe for the portal's blueprints: every
POST carries a CSRF token (C1), forms are capped in size (V1) and refused
when they hold a card number (P1), every response carries the security
headers (C3), and every error is a generic page of the portal's (V3).
:func:`unrouted_blueprint` gives a path under the portal's prefix that leads
nowhere the same page and headers (a 404), instead of the host app's.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Sequence
from typing import Any, TypeVar

from flask import Blueprint, Response, abort, current_app, g, render_template, request, session
from flask.blueprints import BlueprintSetupState
from flask_wtf.csrf import CSRFError, generate_csrf, validate_csrf
from werkzeug.exceptions import (
    HTTPException,
    MethodNotAllowed,
    NotFound,
    RequestEntityTooLarge,
    default_exceptions,
)
from werkzeug.routing import PathConverter
from wtforms.validators import ValidationError as CSRFValidationError

from .. import formatting, i18n, validation
from ..config import config_value
from ..errors import ValidationError
from ..proxies import portal
from .auth import SESSION_TOKEN, current_portal_session

#: The largest form the portal's pages accept (V1); none of them needs more.
MAX_FORM_BYTES = 64 * 1024

#: The methods a catch-all route answers, with a 405 naming those another route takes.
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

#: Strict-Transport-Security's max-age outside debug and testing when HSTS_MAX_AGE is None.
HSTS_DEFAULT_MAX_AGE = 365 * 24 * 60 * 60

#: The form fields that hold a phone number, the one kind of value a card-like number may be.
PHONE_FIELDS = ("phone",)

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
    # Flask looks handlers up by code first, a host's app-wide ones included: a
    # class-wide handler here alone would lose to a host's own 404 page.
    for code in default_exceptions:
        blueprint.register_error_handler(code, _error_page)
    blueprint.register_error_handler(HTTPException, _error_page)
    return blueprint


def unrouted_blueprint() -> Blueprint:
    """Return a blueprint whose one route takes every path under it that no other route takes.

    Mounted at the portal's prefix, an unknown path gets the portal's 404 page
    (a known path with another method its 405), with the portal's headers;
    the host's own 404s, outside the prefix, stay the host's.
    """
    blueprint = guarded_blueprint("customer_portal_unrouted")
    blueprint.record_once(add_any_path_converter)
    methods = [*METHODS, "OPTIONS"]
    blueprint.add_url_rule("/<portal_any_path:path>", "unrouted", _unrouted, methods=methods)
    return blueprint


class AnyPath(PathConverter):
    """A path converter that also takes a newline (``%0A``), where Werkzeug's stops.

    So such a path still lands on a catch-all route, never on the host's 404.
    """

    regex = "[^/](?s:.*?)"


def add_any_path_converter(setup: BlueprintSetupState) -> None:
    """Make :class:`AnyPath` the app's ``portal_any_path`` converter, for catch-all routes."""
    setup.app.url_map.converters.setdefault("portal_any_path", AnyPath)


def methods_elsewhere() -> list[str]:
    """Return the methods another route than this request's takes at its URL."""
    adapter = current_app.create_url_adapter(request)
    assert adapter is not None
    allowed = []
    for method in METHODS:
        try:
            endpoint, _ = adapter.match(method=method)
        except HTTPException:
            continue
        if endpoint != request.endpoint:
            allowed.append(method)
    return allowed


def _unrouted(path: str) -> Any:
    allowed = methods_elsewhere()
    if allowed:
        raise MethodNotAllowed(allowed)
    raise NotFound()


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


def cap_body(max_bytes: int, description: str | None = None) -> None:
    """Answer 413 to a request whose body is over ``max_bytes`` (V1), without reading the rest.

    A body with a Content-Length is judged by it. A chunked one has none: it is
    read now, and Werkzeug stops one byte past the cap (it enforces
    ``request.max_content_length`` while reading), which tells a body that fits
    from one that does not; the views then read it from the cache.
    """
    limit = request.max_content_length
    cap = min(limit, max_bytes) if limit else max_bytes
    request.max_content_length = cap + 1
    if request.content_length is None:
        size = len(request.get_data(cache=True))
    else:
        size = request.content_length
    if size > cap:
        raise RequestEntityTooLarge(description)


def _check_request() -> None:
    cap_body(MAX_FORM_BYTES)
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
    # P1: a card number typed or pasted into any portal form, anywhere in any
    # field, is refused before a view (or a log line, or the database) sees it.
    # A phone number in international notation can pass the Luhn check
    # (+55 11 98765-4325): a phone field's value is let through when it is a valid one.
    for name, value in request.form.items(multi=True):
        if name in PHONE_FIELDS and _is_phone(name, value):
            continue
        try:
            validation.not_a_card_number(name, value)
        except ValidationError:
            abort(400, description=i18n.gettext(CARD_NUMBER_REFUSED))


def _is_phone(name: str, value: str) -> bool:
    try:
        validation.phone(name, value)
    except ValidationError:
        return False
    return True


def allow_sources(
    *, script: Sequence[str] = (), connect: Sequence[str] = (), frame: Sequence[str] = ()
) -> None:
    """Let this response's page load scripts, connect and embed frames from these origins (C3).

    Only a payment provider's page needs it (Stripe.js, its API, its 3-D Secure frames).
    """
    g.customer_portal_sources = {"script": script, "connect": connect, "frame": frame}


def _security_headers(response: Response) -> Response:
    nonce = g.get("customer_portal_nonce")
    sources = g.get("customer_portal_sources", {})
    nonces = [f"'nonce-{nonce}'"] if nonce else []
    script = " ".join(["'self'", *nonces, *sources.get("script", ())])
    more = ""
    if sources.get("connect"):
        more += "; connect-src " + " ".join(["'self'", *sources["connect"]])
    if sources.get("frame"):
        more += "; frame-src " + " ".join(sources["frame"])
    # A form may lead to the payment provider's pages (Chrome checks redirects too).
    forms = " ".join(["'self'", *config_value("PROVIDER_ORIGINS")])
    response.headers.setdefault(
        "Content-Security-Policy",
        f"default-src 'self'; script-src {script}; style-src 'self'; img-src 'self' data:; "
        f"object-src 'none'; base-uri 'none'; form-action {forms}; frame-ancestors 'none'{more}",
    )
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("Cache-Control", "no-store")
    return strict_transport_security(response)


def strict_transport_security(response: Response) -> Response:
    """Add ``Strict-Transport-Security`` to a portal response, as ``HSTS_MAX_AGE`` says."""
    max_age = config_value("HSTS_MAX_AGE")
    if max_age is None:
        max_age = 0 if current_app.debug or current_app.testing else HSTS_DEFAULT_MAX_AGE
    if max_age:
        response.headers.setdefault("Strict-Transport-Security", f"max-age={max_age}")
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


def _error_page(error: HTTPException) -> tuple[str, int, dict[str, str]]:
    if error.code == 429:
        breached = [limit.reset_at for limit in portal.limiter.current_limits if limit.breached]
        # reset_at is a whole second, rounded up: drop that second before rounding.
        seconds = max(breached, default=0) - time.time() - 1
        minutes = max(1, math.ceil(seconds / 60))
        body = render_template("customer_portal/rate_limited.html", minutes=minutes)
        return body, 429, {"Retry-After": str(max(1, math.ceil(seconds)))}
    # V3: a generic page for every error, 500 included; Flask logs the traceback.
    # Only the portal's own descriptions (translated where raised) are shown;
    # Werkzeug's defaults are English, so the page has its own words for them.
    own = error.description != type(error).description
    body = render_template(
        "customer_portal/error.html", error=error, description=error.description if own else None
    )
    # The error's own headers stay, such as a 405's Allow.
    headers = {name: value for name, value in error.get_headers() if name != "Content-Type"}
    return body, error.code or 500, headers
