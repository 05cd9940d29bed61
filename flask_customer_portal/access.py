"""Getting in: dynamic links, sign-in, portal sessions and API keys.

Every secret here (session tokens, API keys, the ids inside links) comes from
:mod:`secrets` with 256 bits of entropy and is stored only as its SHA-256, so a
copy of the database opens nothing (T1, T2). Links themselves live in
:mod:`.links`.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Literal
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import bindparam, select, update

from . import audit, deep_links, emails, links, signals
from . import validation as v
from .config import config_value
from .db import utcnow
from .errors import ValidationError
from .links import PortalLink
from .models import MODES, ApiKey, Business, Customer, PortalSession
from .proxies import portal, unit_of_work, update_one, update_rows

# -- Links -----------------------------------------------------------------------------


def create_portal_session(
    customer: Customer,
    *,
    return_url: str | None = None,
    send_email: bool = False,
    flow: str | None = None,
    subscription_id: str | None = None,
    invoice_id: str | None = None,
) -> PortalLink:
    """Create a single-use dynamic link straight into ``customer``'s portal; commit.

    The link works once, for ``CUSTOMER_PORTAL_SESSION_LINK_TTL`` seconds (24 h by
    default). With ``send_email`` it is also mailed to the customer.

    :param return_url: where the portal's "Return to <business>" button leads, and
        where the customer goes once a ``flow``'s action is done; https (or http on
        localhost in debug), on ``EXTERNAL_URL``'s origin or one of ``RETURN_URL_ORIGINS``.
    :param flow: open one action right after sign-in (a deep link):
        ``"update_payment_method"``, ``"cancel"`` or ``"change_plan"`` of the
        customer's subscription ``subscription_id``, or ``"pay_invoice"`` of the
        customer's invoice ``invoice_id`` (public ids).
    :raises ValidationError: ``return_url`` is not allowed; ``flow`` is unknown;
        its id is missing or names no record of this customer (Z1).
    """
    return_url = check_return_url(return_url)
    next_path = None
    if flow is not None or subscription_id is not None or invoice_id is not None:
        next_path = deep_links.flow_path(
            customer, flow, subscription_id=subscription_id, invoice_id=invoice_id
        )
    with unit_of_work():
        link = links.new_link(
            customer, "portal_session", return_url=return_url, next_path=next_path
        )
        if send_email:
            # The mail gets a link of its own, minted when it is sent: no secret
            # waits in the outbox.
            emails.queue_portal_link(customer, return_url=return_url, next_path=next_path)
    return link


def request_login_link(
    business: Business, mode: str, email: str, *, next_path: str | None = None
) -> None:
    """Queue a sign-in link to ``email`` if it belongs to a customer; don't commit.

    The request does the same work whether the email is known or not (T8): one
    outbox row; who the customer is, is looked up when the mail is sent.

    :param next_path: the portal page the link opens after sign-in (a bookmark
        opened while signed out); kept with the link on the server.
    :raises ValidationError: ``next_path`` is not a portal path (no open redirect).
    """
    if next_path is not None:
        next_path = deep_links.check_next_path(next_path)
    emails.queue_login_link(business, mode, email, next_path=next_path)


def check_return_url(url: str | None) -> str | None:
    """Return ``url`` if the portal may send customers there, else raise ``ValidationError``.

    Allowed: https on the origin of ``EXTERNAL_URL`` or of ``RETURN_URL_ORIGINS``;
    http only on localhost while the app is in debug or testing.
    """
    if url is None or url == "":
        return None
    if not isinstance(url, str) or len(url) > 2000 or not url.isprintable() or "\\" in url:
        raise ValidationError("return_url", "invalid_url", "is not a valid URL")
    try:
        parts = urlsplit(url)
        local = parts.hostname in ("localhost", "127.0.0.1", "::1")
    except ValueError:
        raise ValidationError("return_url", "invalid_url", "is not a valid URL") from None
    origin = f"{parts.scheme}://{parts.netloc}"
    allowed = {config_value("EXTERNAL_URL"), *config_value("RETURN_URL_ORIGINS")}
    development = current_app.debug or current_app.testing
    if origin in allowed or (parts.scheme == "http" and local and development):
        return url
    if parts.scheme != "https":
        raise ValidationError("return_url", "not_https", "must be an https:// URL")
    raise ValidationError(
        "return_url", "origin_not_allowed", f"{origin} is not an allowed origin", origin=origin
    )


# -- Sessions --------------------------------------------------------------------------


@dataclass(frozen=True)
class SignIn:
    """A portal session just opened, and the secret the browser keeps for it."""

    #: Goes in the browser's session cookie; only its hash is stored.
    token: str
    session: PortalSession
    #: The portal page the link opens after sign-in, if any (relative to the app's root).
    next_path: str | None = None
    #: Whether that page is a deep link's action (after it, the customer returns to
    #: ``return_url``), rather than a page the customer had bookmarked.
    deep_link: bool = False


def redeem_link(business: Business, mode: str, token: str) -> SignIn | None:
    """Use a sign-in link once and open a portal session; commit; send ``customer_signed_in``.

    Returns ``None`` if the link is forged, unknown, used, expired, or belongs
    to another business or mode.
    """
    with unit_of_work() as session:
        used = links.use_link(business, mode, token)
        if used is None:
            return None
        customer = session.get_one(Customer, used.customer_id)
        opened = _add_session(customer, used.return_url)
    _signed_in(customer, "link")
    if used.next_path is None:
        return opened
    return replace(opened, next_path=used.next_path, deep_link=used.purpose == "portal_session")


def start_session(
    customer: Customer,
    *,
    return_url: str | None = None,
    method: Literal["host", "link"] = "host",
) -> SignIn:
    """Open a portal session for ``customer``; commit; send ``customer_signed_in``.

    The host login bridge calls it for the host's signed-in user (``method``
    ``"host"``); a confirmed email change signs the browser in afresh (``"link"``).

    :param return_url: as for :func:`create_portal_session`.
    :raises ValidationError: ``return_url`` is not allowed.
    """
    return_url = check_return_url(return_url)
    with unit_of_work():
        opened = _add_session(customer, return_url)
    _signed_in(customer, method)
    return opened


def _signed_in(customer: Customer, method: str) -> None:
    audit.event(
        "sign_in",
        customer=customer.public_id,
        business=customer.business.public_id,
        mode=customer.mode,
        method=method,
    )
    signals.send(signals.customer_signed_in, customer=customer, method=method)


def _add_session(customer: Customer, return_url: str | None) -> SignIn:
    token, now = links.new_token(), utcnow()
    portal_session = PortalSession(
        token_hash=links.hash_token(token),
        business_id=customer.business_id,
        mode=customer.mode,
        customer_id=customer.id,
        customer=customer,
        return_url=return_url,
        created_at=now,
        last_seen_at=now,
        expires_at=now + timedelta(seconds=config_value("SESSION_LIFETIME")),
    )
    portal.session.add(portal_session)
    return SignIn(token, portal_session)


#: The live session of a token, built once: every signed-in request runs it.
_LIVE_SESSION = select(PortalSession).where(
    PortalSession.token_hash == bindparam("token_hash"),
    PortalSession.revoked_at.is_(None),
    PortalSession.expires_at > bindparam("now"),
    PortalSession.last_seen_at > bindparam("since"),
)


def load_session(token: str) -> PortalSession | None:
    """Return the live session for a cookie's token, or ``None``; notes the activity.

    A session ends at its absolute expiry, after ``SESSION_IDLE_TIMEOUT`` seconds
    without a request, or when revoked (T11, T12). Activity is written at most
    once a minute.
    """
    now, session = utcnow(), portal.session
    idle_since = now - timedelta(seconds=config_value("SESSION_IDLE_TIMEOUT"))
    portal_session = session.scalar(
        _LIVE_SESSION, {"token_hash": links.hash_token(token), "now": now, "since": idle_since}
    )
    if portal_session is not None and now - portal_session.last_seen_at > timedelta(minutes=1):
        portal_session.last_seen_at = now
        session.commit()
    return portal_session


def is_recent(portal_session: PortalSession) -> bool:
    """Tell whether the sign-in was recent enough for a sensitive action (T12)."""
    limit = timedelta(seconds=config_value("RECENT_SIGN_IN"))
    return utcnow() - portal_session.created_at <= limit


def end_session(token: str) -> None:
    """Revoke the session of this token on the server (sign out); commit."""
    with unit_of_work() as session:
        ended = session.execute(
            update(PortalSession)
            .where(PortalSession.token_hash == links.hash_token(token))
            .values(revoked_at=utcnow())
            .returning(PortalSession.customer_id)
            .execution_options(synchronize_session=False)
        ).first()
        customer = session.get(Customer, ended.customer_id) if ended else None
    if customer is not None:
        audit.event("session_revoked", customer=customer.public_id, reason="sign_out", count=1)


def revoke_sessions(customer: Customer) -> int:
    """End every open session of ``customer`` on the server; commit. Returns how many."""
    with unit_of_work():
        return end_sessions(customer, reason="revoked")


def end_sessions(customer: Customer, *, reason: str) -> int:
    """End every open session of ``customer``; don't commit. Returns how many.

    :param reason: why, for the log line (``"revoked"``, ``"email_changed"``).
    """
    count = update_rows(
        update(PortalSession)
        .where(PortalSession.customer_id == customer.id, PortalSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
    audit.event("session_revoked", customer=customer.public_id, reason=reason, count=count)
    return count


# -- API keys --------------------------------------------------------------------------


def create_api_key(business: Business, mode: str, *, name: str = "") -> tuple[str, ApiKey]:
    """Create an API key for ``business`` in ``mode``; commit; return the key and its row.

    The key (``cp_test_...`` or ``cp_live_...``) is shown once: only its hash is kept.
    """
    mode = v.choice("mode", mode, MODES)
    raw = f"cp_{mode}_{links.new_token()}"
    with unit_of_work() as session:
        key = ApiKey(
            business_id=business.id,
            mode=mode,
            key_hash=links.hash_token(raw),
            hint=raw[:12] + "…" + raw[-4:],
            name=name[:100],
        )
        session.add(key)
    return raw, key


def authenticate_api_key(raw: str) -> ApiKey | None:
    """Return the live key for this secret, or ``None``; notes when it was last used (T13)."""
    digest = links.hash_token(raw)
    session = portal.session
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
    with unit_of_work():
        return update_one(
            update(ApiKey)
            .where(ApiKey.public_id == public_id, ApiKey.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
