"""Who is signed in: the portal session in the browser's cookie, and the views' guard.

The customer's identity in the portal is a server-side session whose random
token is in the Flask session; it is never the host's Flask-Login
``current_user``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, cast

from flask import g, redirect, render_template, request, session, url_for
from werkzeug.local import LocalProxy

from ..access import SignIn, is_recent, load_session
from ..businesses import only_business
from ..config import config_value
from ..models import Customer, PortalSession
from ..urls import mode_endpoint

#: Keys of the portal in the Flask session: the session token, and which
#: business and mode it was for (to send an expired visitor to the right login page).
SESSION_TOKEN = "_customer_portal"
SESSION_HOME = "_customer_portal_home"
#: The page of the action a deep link opened, until that action is done.
SESSION_FLOW = "_customer_portal_flow"


def current_portal_session() -> PortalSession | None:
    """Return the signed-in customer's live server-side session, or ``None``."""
    if "customer_portal_session" not in g:
        token = session.get(SESSION_TOKEN)
        g.customer_portal_session = load_session(token) if isinstance(token, str) else None
    portal_session: PortalSession | None = g.customer_portal_session
    return portal_session


def _current_customer() -> Customer | None:
    portal_session = current_portal_session()
    return portal_session.customer if portal_session else None


#: The signed-in portal customer, or ``None``. Never the host's ``current_user``.
current_customer = cast(Customer | None, LocalProxy(_current_customer))


def customer_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """Let only a signed-in portal customer through; others go to their sign-in page.

    The sign-in page keeps the page asked for (a GET's path and query), so the
    emailed link opens it after sign-in. Which business's sign-in page: the one
    this browser was last signed in to, else the only business there is.
    """

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if current_portal_session() is None:
            home = session.get(SESSION_HOME)
            session.pop(SESSION_TOKEN, None)
            params: dict[str, Any] = {}
            if request.method == "GET" and request.endpoint != "customer_portal.overview":
                params["next"] = request.full_path if request.query_string else request.path
            if isinstance(home, list) and len(home) == 2:
                business_id, mode = home
                return redirect(login_url(business_id, mode, expired=True, **params))
            only = only_business()
            if only is not None:
                return redirect(login_url(only, config_value("DEFAULT_MODE"), **params))
            return render_template("customer_portal/signed_out.html"), 401
        return view(*args, **kwargs)

    return wrapper


def signed_in_customer() -> Customer:
    """Return the signed-in customer inside a :func:`customer_required` view."""
    portal_session = current_portal_session()
    assert portal_session is not None, "use customer_required"
    return portal_session.customer


def signed_in_recently() -> bool:
    """Tell whether the customer signed in recently enough for a sensitive action (T12)."""
    portal_session = current_portal_session()
    return portal_session is not None and is_recent(portal_session)


def login_url(business_id: str, mode: str, **params: Any) -> str:
    """Return the (relative) static login page of a business in a mode."""
    return url_for(mode_endpoint("login", mode), business_id=business_id, **params)


def sign_in(opened: SignIn, *, clear: bool = True) -> None:
    """Put a portal session just opened in the browser's session cookie.

    ``clear`` empties the Flask session first (T10: nothing planted before
    sign-in survives it); the host login bridge keeps the host's own sign-in.
    A deep link's action page is remembered until the action is done.
    """
    if clear:
        session.clear()
    session.pop(SESSION_FLOW, None)
    if opened.deep_link:
        session[SESSION_FLOW] = opened.next_path
    session[SESSION_TOKEN] = opened.token
    session[SESSION_HOME] = [opened.session.customer.business.public_id, opened.session.mode]
    g.customer_portal_session = opened.session
