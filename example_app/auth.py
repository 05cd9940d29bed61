"""Staff sign-in: Flask-Login, the sign-in and sign-out forms, password checks, safe redirects.

The forms are Flask-WTF forms, so each post carries the session's CSRF token;
they protect the store's own pages only and leave the portal's routes alone.
"""

from __future__ import annotations

import re
import secrets
from functools import cache

from flask_login import LoginManager
from flask_wtf import FlaskForm
from sqlalchemy import select
from werkzeug.security import check_password_hash, generate_password_hash
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired

from .models import Staff, db

_LOCAL_PATH = re.compile(r"/(?![/\\])[^\s\\]*")

login_manager = LoginManager()
login_manager.login_view = "staff.login"
login_manager.login_message = "Sign in to see the staff pages."


class SignInForm(FlaskForm):
    """The staff sign-in form."""

    email = EmailField("Email", validators=[DataRequired()])
    password = PasswordField("Password", validators=[DataRequired()])


class SignOutForm(FlaskForm):
    """Only a CSRF token: signing out is a post that no other site can make."""


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


@cache
def _unused_hash() -> str:
    return generate_password_hash(secrets.token_urlsafe(16))
