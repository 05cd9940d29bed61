"""Staff sign-in: Flask-Login, password checks, safe redirects and a minimal CSRF guard.

The store takes no dependency beyond the portal's for CSRF: each session gets a
random token that every staff form posts back (Flask-WTF's ``CSRFProtect`` does
the same with more features).
"""

from __future__ import annotations

import hmac
import re
import secrets
from functools import cache

from flask import abort, request, session
from flask_login import LoginManager
from sqlalchemy import select
from werkzeug.security import check_password_hash, generate_password_hash

from .models import Staff, db

CSRF_FIELD = "csrf_token"
_LOCAL_PATH = re.compile(r"/(?![/\\])[^\s\\]*")

login_manager = LoginManager()
login_manager.login_view = "staff.login"
login_manager.login_message = "Sign in to see the staff pages."


@login_manager.user_loader
def load_staff(user_id: str) -> Staff | None:
    """Return the signed-in staff member of the session."""
    return db.session.get(Staff, int(user_id))


def authenticate(email: str, password: str) -> Staff | None:
    """Return the staff member with this email and password, or ``None``."""
    staff = db.session.scalar(select(Staff).filter_by(email=email.strip().lower()))
    if staff is None:
        # Take as long as a real check, so timing does not tell which emails exist.
        check_password_hash(_unused_hash(), password)
        return None
    return staff if staff.check_password(password) else None


def local_path(target: str | None) -> str | None:
    """Return ``target`` if it is a path on this site, else ``None`` (no open redirects)."""
    return target if target and _LOCAL_PATH.fullmatch(target) else None


def csrf_token() -> str:
    """Return the session's CSRF token, made on first use, for a form's hidden field."""
    if CSRF_FIELD not in session:
        session[CSRF_FIELD] = secrets.token_urlsafe(32)
    token: str = session[CSRF_FIELD]
    return token


def check_csrf() -> None:
    """Refuse a form post without the session's CSRF token (a ``before_request`` hook)."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    expected = session.get(CSRF_FIELD)
    given = request.form.get(CSRF_FIELD, "")
    if not expected or not hmac.compare_digest(expected.encode(), given.encode()):
        abort(400, "The form has expired. Reload the page and try again.")


@cache
def _unused_hash() -> str:
    return generate_password_hash(secrets.token_urlsafe(16))
