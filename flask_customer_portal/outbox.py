"""The outbox: email queued with its cause, sent after commit, retried with back-off (M1).

A request never talks to the mail server. :func:`queue` adds a row to the
outbox in the caller's transaction; once that transaction commits, the mail
thread (``MAIL_DISPATCH = "thread"``) or ``flask portal send-mail`` renders and
sends it through the app's :class:`~.mail.Mailer`, and retries a failure later.
A mail server that is down or hangs can delay mail; it can never break or slow
a page. What each kind of message says is :mod:`.emails`' business.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from .config import config_value
from .db import utcnow
from .mail import Email, LocalMailer
from .models import OutboxMessage
from .proxies import portal, update_one

#: Renders one queued message; ``None`` when there is nothing to send (no such customer).
Composer = Callable[[OutboxMessage], Email | None]

#: The longest wait between two attempts at one message.
MAX_BACKOFF = timedelta(hours=6)
#: How long a worker owns a message it is sending before another may try.
LEASE = timedelta(minutes=5)

_WAKE = "customer_portal_mail"


def queue(recipient: str, kind: str, **params: Any) -> OutboxMessage:
    """Add a message of ``kind`` to the outbox in the current transaction; don't commit.

    It is sent after the transaction commits; if the transaction rolls back,
    the message goes with it. ``params`` (datetimes included) say what to
    render when it is sent.
    """
    session = portal.session
    message = OutboxMessage(
        recipient=recipient, kind=kind, params=_jsonable(params), status="pending"
    )
    session.add(message)
    if portal.dispatcher is not None:
        session.info[_WAKE] = portal.dispatcher
    return message


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in params.items()}


def wake_after_commit(session: Session) -> None:
    """Session event (``after_commit``): kick the mail thread if the commit queued mail."""
    dispatcher = session.info.pop(_WAKE, None)
    if dispatcher is not None:
        dispatcher.kick()


def forget_after_rollback(session: Session) -> None:
    """Session event (``after_rollback``): the queued mail went with the transaction."""
    session.info.pop(_WAKE, None)


def send_due(composers: Mapping[str, Composer], limit: int = 100) -> tuple[int, int]:
    """Send the messages whose time has come; return how many were sent and how many failed.

    Any number of workers (mail threads, ``flask portal send-mail --loop``) may
    run at once: each message is claimed by one of them only (see
    :func:`_claim_next`), so it is sent once.

    :param composers: renders each kind of message (:data:`.emails.COMPOSERS`).
    :param limit: at most this many messages in this call.
    """
    session = portal.session
    sent = failed = 0
    for _ in range(limit):
        message_id = _claim_next(session)
        if message_id is None:
            break
        outcome = _send_one(session, composers, message_id)
        sent += outcome == "sent"
        failed += outcome == "failed"
    return sent, failed


def _claim_next(session: Session) -> int | None:
    """Claim the next due message for this worker for :data:`LEASE`; commit; return its id.

    PostgreSQL locks the row it picks and lets other workers skip it (``FOR
    UPDATE SKIP LOCKED``), so they never wait for each other; SQLite has one
    writer at a time, and the conditional UPDATE decides. A claim that lost
    the race tries the next message.
    """
    while True:
        now = utcnow()
        message_id = session.scalar(
            select(OutboxMessage.id)
            .where(OutboxMessage.status == "pending", OutboxMessage.next_attempt_at <= now)
            .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        if message_id is None:
            session.commit()
            return None
        claimed = update_one(
            update(OutboxMessage)
            .where(
                OutboxMessage.id == message_id,
                OutboxMessage.status == "pending",
                OutboxMessage.next_attempt_at <= now,
            )
            .values(next_attempt_at=now + LEASE, attempts=OutboxMessage.attempts + 1)
        )
        session.commit()
        if claimed:
            return message_id


def _send_one(session: Session, composers: Mapping[str, Composer], message_id: int) -> str:
    message = session.get(OutboxMessage, message_id)
    assert message is not None
    try:
        email = composers[message.kind](message)
        if email is None:
            message.status, message.sent_at = "dropped", utcnow()
            session.commit()
            return "dropped"
        # Anything the composer wrote (a sign-in link) lands before the mail leaves.
        session.commit()
        portal.mailer.send(message.recipient, email)
    except Exception as error:  # whatever failed, the message is retried later
        session.rollback()
        _record_failure(session, message_id, error)
        return "failed"
    message.status, message.sent_at, message.last_error = "sent", utcnow(), None
    session.commit()
    return "sent"


def _record_failure(session: Session, message_id: int, error: Exception) -> None:
    message = session.get(OutboxMessage, message_id)
    assert message is not None
    message.last_error = f"{type(error).__name__}: {error}"[:500]
    if message.attempts >= config_value("MAIL_MAX_ATTEMPTS"):
        message.status = "failed"
    else:
        backoff = timedelta(seconds=30 * 2 ** (message.attempts - 1))
        message.next_attempt_at = utcnow() + min(backoff, MAX_BACKOFF)
    current_app.logger.warning(
        "mail %s to %s failed (attempt %s): %s",
        message.id,
        message.recipient,
        message.attempts,
        message.last_error,
    )
    session.commit()


def local_messages() -> list[dict[str, Any]]:
    """Return the messages the local mailer kept, newest first (development only)."""
    mailer = portal.mailer
    return list(mailer.messages) if isinstance(mailer, LocalMailer) else []
