"""The language a page is read in, and the switcher that changes it."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, has_request_context, redirect, request, session, url_for

from .. import i18n
from ..businesses import get_business
from ..config import config_value
from ..customers import upsert_customer
from .auth import SESSION_TOKEN, current_portal_session

#: Where a visitor who is not signed in keeps the language they chose.
SESSION_LOCALE = "_customer_portal_locale"

#: The blueprints whose pages are read in the customer's language.
PORTAL_BLUEPRINTS = (
    "customer_portal",
    "customer_portal_staff",
    "customer_portal_test_provider",
    "customer_portal_stripe",
)


def register(blueprint: Blueprint) -> None:
    """Add the language switcher's route to ``blueprint``."""
    blueprint.add_url_rule("/language", "set_language", set_language, methods=["POST"])


def select_locale() -> str | None:
    """Flask-Babel's locale selector: the reader's language on the portal's pages only.

    In order: the signed-in customer's saved choice, the language chosen in this
    browser, the browser's ``Accept-Language``, the business's default, the
    portal's ``DEFAULT_LOCALE``, English. Elsewhere ``None``: the host decides.
    """
    if not has_request_context() or request.blueprint not in PORTAL_BLUEPRINTS:
        return None
    portal_session = current_portal_session() if SESSION_TOKEN in session else None
    customer = portal_session.customer if portal_session else None
    chosen = (
        i18n.supported(customer.locale if customer else None)
        or i18n.supported(session.get(SESSION_LOCALE))
        or request.accept_languages.best_match(i18n.SUPPORTED_LOCALES)
    )
    if chosen:
        return i18n.supported(chosen)
    business = customer.business if customer else _page_business()
    return (
        i18n.supported(business.default_locale if business else None)
        or i18n.supported(config_value("DEFAULT_LOCALE"))
        or i18n.SUPPORTED_LOCALES[0]
    )


def _page_business() -> Any:
    # The sign-in pages name their business in the URL.
    business_id = (request.view_args or {}).get("business_id")
    return get_business(business_id) if isinstance(business_id, str) else None


def set_language() -> Any:
    """Keep the language chosen in the footer: on the customer's record when signed in,
    else in this browser's session; then go back to the page it was chosen on."""
    chosen = request.form.get("locale", "")
    if chosen not in i18n.SUPPORTED_LOCALES:
        abort(400, description=i18n.gettext("Choose a language from the list."))
    portal_session = current_portal_session()
    if portal_session is not None:
        customer = portal_session.customer
        upsert_customer(customer.business, customer.email, mode=customer.mode, locale=chosen)
    else:
        session[SESSION_LOCALE] = chosen
    return redirect(_back(request.form.get("next", "")), 303)


def _back(path: str) -> str:
    # Only a path on this site: never an open redirect to another one.
    if path.startswith("/") and not path.startswith("//") and path.isprintable():
        if "\\" not in path and " " not in path:
            return path
    return url_for("customer_portal.overview")
