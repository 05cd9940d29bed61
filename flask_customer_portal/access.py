"""Getting in: sign-in links, portal sessions and API keys.

Every secret here (link tokens, session tokens, API keys) comes from
:mod:`secrets` with 256 bits of entropy and is stored only as its SHA-256, so a
copy of the database opens nothing. A link is consumed by one conditional
UPDATE, which is what makes it single-use on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import ColumnElement, select, update

from . import mail
from .config import config_value
from .db import db_session, unit_of_work, utcnow
from .errors import ValidationError
from .i18n import _l
from .models import (
    SIGN_IN_PURPOSES,
    ApiKey,
    Business,
    Customer,
    LoginLink,
    OutboxMessage,
    PortalSession,
)

#: The purpose of links that confirm a new email address (sign-in pages refuse them).
EMAIL_CHANGE = ("email_change",)


def new_token() -> str:
    """Return a fresh URL-safe secret of 256 bits."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """Return the SHA-256 hex digest under which a secret is stored and looked up."""
    return hashlib.sha256(token.encode()).hexdigest()


# -- Links ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PortalLink:
    """A sign-in link and the moment it stops working."""

    url: str
    expires_at: datetime


def create_portal_session(
    customer: Customer, *, return_url: str | None = None, send_email: bool = False
) -> PortalLink:
    """Create a single-use dynamic link straight into ``customer``'s portal; commit.

    The link works once, for ``CUSTOMER_PORTAL_SESSION_LINK_TTL`` seconds (24 h by
    default). With ``send_email`` it is also mailed to the customer.

    :param return_url: where the portal's "Return to <business>" button leads;
        https (or http on localhost in debug), on ``EXTERNAL_URL``'s origin or one
        of ``RETURN_URL_ORIGINS``.
    """
    return_url = check_return_url(return_url)
    with unit_of_work():
        link = new_link(customer, "portal_session", return_url=return_url)
        if send_email:
            # The mail gets a link of its own, minted when it is sent: no secret
            # waits in the outbox.
            mail.queue_mail(customer, "portal_link", return_url=return_url)
    return link


def new_link(
    customer: Customer,
    purpose: str,
    *,
    return_url: str | None = None,
    new_email: str | None = None,
) -> PortalLink:
    """Add a single-use link for ``customer``; don't commit.

    :param purpose: ``"email_login"`` (lives ``LOGIN_LINK_TTL``),
        ``"portal_session"`` (lives ``SESSION_LINK_TTL``) or ``"email_change"``
        (lives ``LOGIN_LINK_TTL``; confirms ``new_email`` as the customer's address).
    """
    emailed = purpose in ("email_login", "email_change")
    ttl = config_value("LOGIN_LINK_TTL" if emailed else "SESSION_LINK_TTL")
    token, now = new_token(), utcnow()
    link = LoginLink(
        token_hash=hash_token(token),
        purpose=purpose,
        business_id=customer.business_id,
        mode=customer.mode,
        customer_id=customer.id,
        return_url=return_url,
        new_email=new_email,
        created_at=now,
        expires_at=now + timedelta(seconds=ttl),
    )
    db_session().add(link)
    if purpose == "email_change":
        url = email_change_url(customer.business, customer.mode, token)
    else:
        url = link_url(customer.business, customer.mode, token)
    return PortalLink(url, link.expires_at)


def link_is_valid(business: Business, mode: str, token: str) -> bool:
    """Tell whether a link would sign in now, without using it (for GET and HEAD)."""
    return (
        db_session().scalar(select(LoginLink.id).where(*_usable(business, mode, token, utcnow())))
        is not None
    )


def redeem_link(business: Business, mode: str, token: str) -> tuple[str, PortalSession] | None:
    """Use a link once and open a portal session; commit.

    Returns the new session's secret token and row, or ``None`` if the link is
    unknown, used, expired, or belongs to another business or mode.
    """
    now = utcnow()
    with unit_of_work() as session:
        row = session.execute(
            update(LoginLink)
            .where(*_usable(business, mode, token, now))
            .values(used_at=now)
            .returning(LoginLink.customer_id, LoginLink.return_url)
            .execution_options(synchronize_session=False)
        ).first()
        if row is None:
            return None
        customer = session.get(Customer, row.customer_id)
        assert customer is not None
        return _add_session(customer, row.return_url, now)


def _usable(
    business: Business,
    mode: str,
    token: str,
    now: datetime,
    purposes: tuple[str, ...] = SIGN_IN_PURPOSES,
) -> tuple[ColumnElement[bool], ...]:
    return (
        LoginLink.token_hash == hash_token(token),
        LoginLink.purpose.in_(purposes),
        LoginLink.business_id == business.id,
        LoginLink.mode == mode,
        LoginLink.used_at.is_(None),
        LoginLink.expires_at > now,
    )


def revoke_links(customer: Customer, *, purpose: str | None = None) -> int:
    """Make every unused link of ``customer`` unusable; don't commit. Returns how many.

    :param purpose: revoke only the links of this purpose.
    """
    only = () if purpose is None else (LoginLink.purpose == purpose,)
    result = db_session().execute(
        update(LoginLink)
        .where(LoginLink.customer_id == customer.id, LoginLink.used_at.is_(None), *only)
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def link_url(business: Business, mode: str, token: str | None = None) -> str:
    """Return the absolute static login link, or a sign-in link when ``token`` is given.

    Always built from ``CUSTOMER_PORTAL_EXTERNAL_URL``, never from the request's Host.
    """
    return _external_url(mode, f"/login/{business.public_id}" + (f"/{token}" if token else ""))


def email_change_url(business: Business, mode: str, token: str) -> str:
    """Return the absolute link that confirms a new email address (from ``EXTERNAL_URL``)."""
    return _external_url(mode, f"/profile/email/{business.public_id}/{token}")


def _external_url(mode: str, path: str) -> str:
    base = config_value("EXTERNAL_URL")
    if base is None:
        from .errors import ConfigurationError

        raise ConfigurationError("set CUSTOMER_PORTAL_EXTERNAL_URL to build links")
    return base + config_value("URL_PREFIX") + ("/test" if mode == "test" else "") + path


def pending_email_change(business: Business, mode: str, token: str) -> str | None:
    """Return the address an email-change link would confirm now, without using it."""
    return db_session().scalar(
        select(LoginLink.new_email).where(*_usable(business, mode, token, utcnow(), EMAIL_CHANGE))
    )


def redeem_email_change(business: Business, mode: str, token: str) -> tuple[Customer, str] | None:
    """Use an email-change link once; don't commit.

    Returns the customer and the address the link confirms, or ``None`` if the
    link is unknown, used, expired, or belongs to another business or mode.
    """
    now, session = utcnow(), db_session()
    row = session.execute(
        update(LoginLink)
        .where(*_usable(business, mode, token, now, EMAIL_CHANGE))
        .values(used_at=now)
        .returning(LoginLink.customer_id, LoginLink.new_email)
        .execution_options(synchronize_session=False)
    ).first()
    if row is None or row.new_email is None:
        return None
    customer = session.get(Customer, row.customer_id)
    assert customer is not None
    return customer, row.new_email


def check_return_url(url: str | None) -> str | None:
    """Return ``url`` if the portal may send customers there, else raise ``ValidationError``.

    Allowed: https on the origin of ``EXTERNAL_URL`` or of ``RETURN_URL_ORIGINS``;
    http only on localhost while the app is in debug or testing.
    """
    if url is None or url == "":
        return None
    if not isinstance(url, str) or len(url) > 2000 or not url.isprintable() or "\\" in url:
        raise ValidationError("return_url", "is not a valid URL")
    try:
        parts = urlsplit(url)
        local = parts.hostname in ("localhost", "127.0.0.1", "::1")
    except ValueError:
        raise ValidationError("return_url", "is not a valid URL") from None
    origin = f"{parts.scheme}://{parts.netloc}"
    allowed = {config_value("EXTERNAL_URL"), *config_value("RETURN_URL_ORIGINS")}
    if origin in allowed or (parts.scheme == "http" and local and _in_development()):
        return url
    if parts.scheme != "https":
        raise ValidationError("return_url", "must be an https:// URL")
    raise ValidationError("return_url", f"{origin} is not an allowed origin")


def _in_development() -> bool:
    return bool(current_app.debug or current_app.testing)


# -- Sessions ------------------------------------------------------------------------


def _add_session(
    customer: Customer, return_url: str | None, now: datetime
) -> tuple[str, PortalSession]:
    token = new_token()
    portal_session = PortalSession(
        token_hash=hash_token(token),
        business_id=customer.business_id,
        mode=customer.mode,
        customer_id=customer.id,
        return_url=return_url,
        created_at=now,
        last_seen_at=now,
        expires_at=now + timedelta(seconds=config_value("SESSION_LIFETIME")),
    )
    db_session().add(portal_session)
    return token, portal_session


def start_session(customer: Customer, *, return_url: str | None = None) -> str:
    """Open a portal session for ``customer`` (the host login bridge); commit; return its token."""
    with unit_of_work():
        token, _ = _add_session(customer, return_url, utcnow())
    return token


def load_session(token: str) -> PortalSession | None:
    """Return the live session for a cookie's token, or ``None``; notes the activity.

    A session ends at its absolute expiry, after ``SESSION_IDLE_TIMEOUT`` seconds
    without a request, or when revoked. Activity is written at most once a minute.
    """
    now = utcnow()
    session = db_session()
    portal_session = session.scalar(
        select(PortalSession).where(
            PortalSession.token_hash == hash_token(token),
            PortalSession.revoked_at.is_(None),
            PortalSession.expires_at > now,
            PortalSession.last_seen_at
            > now - timedelta(seconds=config_value("SESSION_IDLE_TIMEOUT")),
        )
    )
    if portal_session is not None and now - portal_session.last_seen_at > timedelta(minutes=1):
        portal_session.last_seen_at = now
        session.commit()
    return portal_session


def is_recent(portal_session: PortalSession) -> bool:
    """Tell whether the sign-in was recent enough for a sensitive action."""
    limit = timedelta(seconds=config_value("RECENT_SIGN_IN"))
    return utcnow() - portal_session.created_at <= limit


def end_session(token: str) -> None:
    """Revoke the session of this token on the server (sign out); commit."""
    with unit_of_work():
        db_session().execute(
            update(PortalSession)
            .where(PortalSession.token_hash == hash_token(token))
            .values(revoked_at=utcnow())
            .execution_options(synchronize_session=False)
        )


def revoke_sessions(customer: Customer) -> int:
    """End every open session of ``customer`` on the server; commit. Returns how many."""
    with unit_of_work():
        result = db_session().execute(
            update(PortalSession)
            .where(PortalSession.customer_id == customer.id, PortalSession.revoked_at.is_(None))
            .values(revoked_at=utcnow())
            .execution_options(synchronize_session=False)
        )
    return int(result.rowcount)  # type: ignore[attr-defined]


# -- API keys ------------------------------------------------------------------------


def create_api_key(business: Business, mode: str, *, name: str = "") -> tuple[str, ApiKey]:
    """Create an API key for ``business`` in ``mode``; commit; return the key and its row.

    The key (``cp_test_...`` or ``cp_live_...``) is shown once: only its hash is kept.
    """
    if mode not in ("test", "live"):
        raise ValidationError("mode", "must be test or live")
    raw = f"cp_{mode}_{new_token()}"
    with unit_of_work() as session:
        key = ApiKey(
            business_id=business.id,
            mode=mode,
            key_hash=hash_token(raw),
            hint=raw[:12] + "…" + raw[-4:],
            name=name[:100],
        )
        session.add(key)
    return raw, key


def authenticate_api_key(raw: str) -> ApiKey | None:
    """Return the live key for this secret, or ``None``; notes when it was last used."""
    digest = hash_token(raw)
    session = db_session()
    key = session.scalar(
        select(ApiKey).where(ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None))
    )
    if key is None or not hmac.compare_digest(key.key_hash, digest):
        return None
    key.last_used_at = utcnow()
    session.commit()
    return key


def revoke_api_key(public_id: str) -> bool:
    """Revoke the API key with this public id (``key_...``); commit. False if none was live."""
    with unit_of_work() as session:
        result = session.execute(
            update(ApiKey)
            .where(ApiKey.public_id == public_id, ApiKey.revoked_at.is_(None))
            .values(revoked_at=utcnow())
            .execution_options(synchronize_session=False)
        )
    return bool(result.rowcount)  # type: ignore[attr-defined]


# -- What the portal mails -----------------------------------------------------------


def request_login_link(business: Business, mode: str, email: str) -> None:
    """Queue a sign-in link to ``email`` if it belongs to a customer; don't commit.

    The request does the same work whether the email is known or not (one
    outbox row): who the customer is, is looked up when the mail is sent.
    """
    mail.queue(email, "login_link", business_id=business.id, mode=mode)


@mail.composer("login_link")
def _compose_login_link(message: OutboxMessage) -> mail.Composed | None:
    from .customers import find_customer

    business = db_session().get(Business, message.params["business_id"])
    customer = business and find_customer(business, message.recipient, mode=message.params["mode"])
    if not customer:
        return None
    link = new_link(customer, "email_login")
    return mail.render(
        "login_link",
        _l("Your sign-in link for %(business)s", business=customer.business.name),
        business=customer.business,
        customer=customer,
        link=link,
        minutes=config_value("LOGIN_LINK_TTL") // 60,
    )


@mail.composer("portal_link")
def _compose_portal_link(message: OutboxMessage) -> mail.Composed | None:
    customer = db_session().get(Customer, message.params["customer_id"])
    if customer is None:
        return None
    link = new_link(customer, "portal_session", return_url=message.params.get("return_url"))
    return mail.render(
        "portal_link",
        _l("Your %(business)s account", business=customer.business.name),
        business=customer.business,
        customer=customer,
        link=link,
    )
