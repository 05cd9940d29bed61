"""The portal's own bookkeeping: sign-in links, portal sessions, API keys, the outbox and the
rendered documents it keeps."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..db import MODES, Base, UTCDateTime, created_at_column, one_of, public_id_column, utcnow
from .billing import Business, Customer

LINK_PURPOSES = ("email_login", "portal_session", "email_change")
#: The purposes of links that sign a customer in.
SIGN_IN_PURPOSES = ("email_login", "portal_session")


class LoginLink(Base):
    """A single-use link. Only the SHA-256 of the random id its signed token carries is kept."""

    __tablename__ = "portal_login_links"
    __table_args__ = (
        CheckConstraint(one_of("purpose", LINK_PURPOSES), name="purpose"),
        CheckConstraint(one_of("mode", MODES), name="mode"),
        CheckConstraint("expires_at > created_at", name="expiry"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    purpose: Mapped[str] = mapped_column(String(14))
    business_id: Mapped[int] = mapped_column(ForeignKey("portal_businesses.id"))
    mode: Mapped[str] = mapped_column(String(4))
    customer_id: Mapped[int] = mapped_column(ForeignKey("portal_customers.id"), index=True)
    return_url: Mapped[str | None] = mapped_column(String(2000))
    # For an "email_change" link: the address that becomes the customer's.
    new_email: Mapped[str | None] = mapped_column(String(254))
    # The portal page to open after signing in (a deep link's action, a bookmark):
    # a path under the portal's prefix, checked when the link is made.
    next_path: Mapped[str | None] = mapped_column(String(2000))
    created_at: Mapped[datetime] = created_at_column()
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class PortalSession(Base):
    """A signed-in customer's session, kept on the server so it can be ended there.

    The browser's cookie holds a random token; the row holds its SHA-256.
    """

    __tablename__ = "portal_sessions"
    __table_args__ = (
        CheckConstraint(one_of("mode", MODES), name="mode"),
        CheckConstraint("expires_at > created_at", name="expiry"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    business_id: Mapped[int] = mapped_column(ForeignKey("portal_businesses.id"))
    mode: Mapped[str] = mapped_column(String(4))
    customer_id: Mapped[int] = mapped_column(ForeignKey("portal_customers.id"), index=True)
    return_url: Mapped[str | None] = mapped_column(String(2000))
    created_at: Mapped[datetime] = created_at_column()
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    customer: Mapped[Customer] = relationship(lazy="joined", innerjoin=True)


class ApiKey(Base):
    """A merchant's secret key for the HTTP API, per business and mode; stored hashed."""

    __tablename__ = "portal_api_keys"
    __table_args__ = (CheckConstraint(one_of("mode", MODES), name="mode"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = public_id_column("key")
    business_id: Mapped[int] = mapped_column(ForeignKey("portal_businesses.id"), index=True)
    mode: Mapped[str] = mapped_column(String(4))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hint: Mapped[str] = mapped_column(String(24))
    name: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = created_at_column()
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    business: Mapped[Business] = relationship(lazy="joined", innerjoin=True)


OUTBOX_STATUSES = ("pending", "sent", "dropped", "failed")


class OutboxMessage(Base):
    """An email to send, queued in the same transaction as the change that caused it.

    It holds what to send (``kind`` and ``params``), not the message: the message
    is rendered when it is sent, and a sign-in link in it is minted then, so no
    secret ever waits in the database.
    """

    __tablename__ = "portal_outbox"
    __table_args__ = (
        CheckConstraint(one_of("status", OUTBOX_STATUSES), name="status"),
        CheckConstraint("attempts >= 0", name="attempts"),
        Index("ix_portal_outbox_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    recipient: Mapped[str] = mapped_column(String(254))
    kind: Mapped[str] = mapped_column(String(40))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(7), default="pending")
    created_at: Mapped[datetime] = created_at_column()
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(String(500))


class WebhookEvent(Base):
    """An event a payment provider sent, kept by its id so that a replayed one changes nothing."""

    __tablename__ = "portal_webhook_events"
    __table_args__ = (
        UniqueConstraint("provider", "event_id"),
        CheckConstraint(one_of("mode", MODES), name="mode"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    provider: Mapped[str] = mapped_column(String(40))
    event_id: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(100))
    business_id: Mapped[int] = mapped_column(ForeignKey("portal_businesses.id"))
    mode: Mapped[str] = mapped_column(String(4))
    received_at: Mapped[datetime] = created_at_column()


class StoredDocument(Base):
    """A rendered document (an invoice's PDF), kept under the checksum of what it shows.

    A new version of the invoice (paid, in another language, by a new renderer)
    has another key; the document of a key never changes.
    """

    __tablename__ = "portal_documents"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    media_type: Mapped[str] = mapped_column(String(100))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = created_at_column()
