"""Retention: forget the bookkeeping that has stopped being of use.

Used and expired links, ended portal sessions and mail that went out (or was
dropped) stay for ``CUSTOMER_PORTAL_RETENTION_DAYS`` after they ended, for
support and audits, and are deleted after that by ``flask portal purge``.
Nothing still usable is ever deleted: a row goes only once it ended, and it
ended more than the retention period ago. Rendered invoice documents are a
store of work done, not records: those rendered that long ago go too, and the
next download of one draws it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, or_

from .config import config_value
from .db import utcnow
from .models import LoginLink, OutboxMessage, PortalSession, StoredDocument
from .proxies import unit_of_work, update_rows


@dataclass(frozen=True)
class Purged:
    """How many rows of each kind :func:`purge` deleted."""

    links: int
    sessions: int
    messages: int
    documents: int


def purge() -> Purged:
    """Delete what ended more than ``RETENTION_DAYS`` ago; commit once.

    That is links used or expired, portal sessions revoked or expired, and
    outbox messages sent or dropped, that long ago; and documents rendered that
    long ago. Messages still pending, and those that failed for good, are kept.
    """
    cutoff = utcnow() - timedelta(days=config_value("RETENTION_DAYS"))
    with unit_of_work():
        return Purged(
            links=update_rows(
                delete(LoginLink).where(
                    or_(LoginLink.used_at < cutoff, LoginLink.expires_at < cutoff)
                )
            ),
            sessions=update_rows(
                delete(PortalSession).where(
                    or_(PortalSession.revoked_at < cutoff, PortalSession.expires_at < cutoff)
                )
            ),
            messages=update_rows(
                delete(OutboxMessage).where(
                    OutboxMessage.status.in_(("sent", "dropped")), OutboxMessage.sent_at < cutoff
                )
            ),
            documents=update_rows(delete(StoredDocument).where(StoredDocument.created_at < cutoff)),
        )
