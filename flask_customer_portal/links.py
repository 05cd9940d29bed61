"""Single-use links (sign-in and email-change confirmation), and the secrets behind them.

A link's token is signed with itsdangerous (the app's ``SECRET_KEY``, with
``SECRET_KEY_FALLBACKS`` honoured, and a salt per purpose) and carries a random
single-use id of 256 bits; the database keeps only the SHA-256 of that id, with
the link's purpose, business, mode, customer and expiry (T1, T2, T5). Opening a
link checks the signature and its age first, so a forged or expired token is
refused before any query (T4); then one conditional UPDATE uses the row up,
which is what makes the link single-use on SQLite and PostgreSQL alike (T3).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from itsdangerous import BadData, URLSafeTimedSerializer
from sqlalchemy import ColumnElement, Row, select, update

from . import audit
from .config import config_value
from .db import utcnow
from .models import LINK_PURPOSES, SIGN_IN_PURPOSES, Business, Customer, LoginLink
from .proxies import portal, update_rows
from .urls import external_url, mode_endpoint

#: The purpose of links that confirm a new email address (sign-in pages refuse them).
EMAIL_CHANGE = ("email_change",)

#: How long a link of each purpose lives: the setting with its number of seconds.
_LIFETIMES = {
    "email_login": "LOGIN_LINK_TTL",
    "portal_session": "SESSION_LINK_TTL",
    "email_change": "LOGIN_LINK_TTL",
}
#: The page each link opens.
_PAGES = {
    "email_login": "open_link",
    "portal_session": "open_link",
    "email_change": "confirm_email",
}


def new_token() -> str:
    """Return a fresh URL-safe secret of 256 bits."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """Return the SHA-256 hex digest under which a secret is stored and looked up."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class PortalLink:
    """A single-use link and the moment it stops working."""

    url: str
    expires_at: datetime


def new_link(
    customer: Customer,
    purpose: str,
    *,
    return_url: str | None = None,
    new_email: str | None = None,
    next_path: str | None = None,
) -> PortalLink:
    """Add a single-use link for ``customer``; don't commit.

    :param purpose: ``"email_login"`` (lives ``LOGIN_LINK_TTL``),
        ``"portal_session"`` (lives ``SESSION_LINK_TTL``) or ``"email_change"``
        (lives ``LOGIN_LINK_TTL``; confirms ``new_email`` as the customer's address).
    :param next_path: the portal page the link opens after signing in (checked by
        :func:`.deep_links.check_next_path`); kept here, never in the URL.
    """
    assert purpose in LINK_PURPOSES
    single_use_id, now = new_token(), utcnow()
    link = LoginLink(
        token_hash=hash_token(single_use_id),
        purpose=purpose,
        business_id=customer.business_id,
        mode=customer.mode,
        customer_id=customer.id,
        return_url=return_url,
        new_email=new_email,
        next_path=next_path,
        created_at=now,
        expires_at=now + timedelta(seconds=_lifetime(purpose)),
    )
    portal.session.add(link)
    token = _serializer(purpose).dumps(single_use_id)
    audit.event(
        "link_issued",
        customer=customer.public_id,
        purpose=purpose,
        expires_at=link.expires_at.isoformat(timespec="seconds"),
    )
    url = external_url(
        mode_endpoint(_PAGES[purpose], customer.mode),
        business_id=customer.business.public_id,
        token=token,
    )
    return PortalLink(url, link.expires_at)


def link_is_valid(business: Business, mode: str, token: str) -> bool:
    """Tell whether a sign-in link would sign in now, without using it (for GET and HEAD)."""
    usable = _usable(business, mode, token, SIGN_IN_PURPOSES)
    return (
        usable is not None
        and portal.session.scalar(select(LoginLink.id).where(*usable)) is not None
    )


def use_link(
    business: Business, mode: str, token: str, purposes: tuple[str, ...] = SIGN_IN_PURPOSES
) -> Row[int, str | None, str | None, str | None, str] | None:
    """Use a link once, with one conditional UPDATE; don't commit.

    Returns its ``customer_id``, ``return_url``, ``new_email``, ``next_path`` and
    ``purpose``, or ``None``
    if the token is forged or expired, or the link unknown, used, expired, of
    another purpose, business or mode.
    """
    usable = _usable(business, mode, token, purposes)
    if usable is None:
        return None
    return portal.session.execute(
        update(LoginLink)
        .where(*usable)
        .values(used_at=utcnow())
        .returning(
            LoginLink.customer_id,
            LoginLink.return_url,
            LoginLink.new_email,
            LoginLink.next_path,
            LoginLink.purpose,
        )
        .execution_options(synchronize_session=False)
    ).first()


def pending_email_change(business: Business, mode: str, token: str) -> str | None:
    """Return the address an email-change link would confirm now, without using it."""
    usable = _usable(business, mode, token, EMAIL_CHANGE)
    if usable is None:
        return None
    return portal.session.scalar(select(LoginLink.new_email).where(*usable))


def revoke_links(customer: Customer, *, purpose: str | None = None) -> int:
    """Make every unused link of ``customer`` unusable; don't commit. Returns how many.

    :param purpose: revoke only the links of this purpose.
    """
    only = () if purpose is None else (LoginLink.purpose == purpose,)
    return update_rows(
        update(LoginLink)
        .where(LoginLink.customer_id == customer.id, LoginLink.used_at.is_(None), *only)
        .values(used_at=utcnow())
    )


def static_link(business: Business, mode: str) -> str:
    """Return the business's static login link: it never expires; customers type their email."""
    return external_url(mode_endpoint("login", mode), business_id=business.public_id)


def _usable(
    business: Business, mode: str, token: str, purposes: tuple[str, ...]
) -> tuple[ColumnElement[bool], ...] | None:
    # The signature first: a forged or expired token never reaches the database.
    found = (_single_use_id(token, purpose) for purpose in purposes)
    single_use_id = next((value for value in found if value is not None), None)
    if single_use_id is None:
        return None
    return (
        LoginLink.token_hash == hash_token(single_use_id),
        LoginLink.purpose.in_(purposes),
        LoginLink.business_id == business.id,
        LoginLink.mode == mode,
        LoginLink.used_at.is_(None),
        LoginLink.expires_at > utcnow(),
    )


def _single_use_id(token: str, purpose: str) -> str | None:
    try:
        value, signed_at = _serializer(purpose).loads(token, return_timestamp=True)
    except BadData:
        return None
    # The link's lifetime, as itsdangerous's max_age would check it, except that a
    # token signed a moment "in the future" (by a process whose clock runs ahead)
    # is not refused: it is ours, and its row's expiry is the truth.
    if utcnow() - signed_at > timedelta(seconds=_lifetime(purpose)):
        return None
    return value if isinstance(value, str) else None


def _serializer(purpose: str) -> URLSafeTimedSerializer:
    # Keys oldest to newest: tokens are signed with SECRET_KEY, and those signed
    # with a key being rotated out still open until they expire (O1).
    app = current_app
    keys = [*(app.config["SECRET_KEY_FALLBACKS"] or ()), app.config["SECRET_KEY"]]
    return URLSafeTimedSerializer(keys, salt=f"customer-portal.{purpose}")


def _lifetime(purpose: str) -> int:
    seconds: int = config_value(_LIFETIMES[purpose])
    return seconds
