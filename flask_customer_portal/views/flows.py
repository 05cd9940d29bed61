"""Where a customer goes once an action is done: back where a deep link came from.

A deep link (:func:`~..access.create_portal_session` with a ``flow``) opens one
action page; when that action succeeds, the customer goes to the session's
``return_url`` (the merchant's page the "Return to ..." button leads to), or to
the overview when there is none. Any other visit to the same page carries on
as before.
"""

from __future__ import annotations

from flask import flash, redirect, session, url_for
from werkzeug.wrappers import Response

from .auth import SESSION_FLOW, current_portal_session
from .guard import FLASH


def action_done(
    page: str, fallback: str, message: str | None = None, *, fallback_shows: bool = True
) -> Response:
    """Answer an action done on ``page`` (a path, as ``request.path``) with a 303.

    If a deep link opened ``page``, go to the session's ``return_url`` (no
    message: the merchant's site says its own) or else to the overview, which
    shows ``message``; otherwise to ``fallback``, which shows it unless
    ``fallback_shows`` is false (a page without flashed messages).
    """
    portal_session = current_portal_session()
    if portal_session is not None and session.get(SESSION_FLOW) == page:
        session.pop(SESSION_FLOW)
        if portal_session.return_url:
            return redirect(portal_session.return_url, 303)
        fallback, fallback_shows = url_for("customer_portal.overview"), True
    if message and fallback_shows:
        flash(message, FLASH)
    return redirect(fallback, 303)
