"""Email through an outbox: queued with its cause, sent after commit, retried with back-off.

A request never talks to the mail server. :func:`queue_mail` adds a row to the
outbox in the caller's transaction; once that transaction commits, a background
thread (``MAIL_DISPATCH = "thread"``) or ``flask portal send-mail`` sends it with
an SMTP time-out, and retries a failure later. A mail server that is down or
hangs can delay mail; it can never break or slow a page.
"""

from __future__ import annotations

import smtplib
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from flask import Flask, current_app, render_template
from flask_babel import force_locale
from flask_mail import Connection, Mail, Message
from sqlalchemy import event, select, update
from sqlalchemy.orm import Session

from . import i18n
from .config import config_value
from .db import db_session, utcnow
from .formatting import locale_of
from .models import Customer, OutboxMessage

#: The longest wait between two attempts at one message.
MAX_BACKOFF = timedelta(hours=6)
#: How long a worker owns a message it is sending before another may try.
LEASE = timedelta(minutes=5)


@dataclass
class Composed:
    """A rendered email."""

    subject: str
    text: str
    html: str


#: How each kind of message is rendered when it is sent. A composer returns
#: ``None`` when there is nothing to send (for example, no such customer).
COMPOSERS: dict[str, Callable[[OutboxMessage], Composed | None]] = {}


def composer(kind: str) -> Callable[[Callable[[OutboxMessage], Composed | None]], Any]:
    """Register the function that renders messages of ``kind``."""

    def register(function: Callable[[OutboxMessage], Composed | None]) -> Any:
        COMPOSERS[kind] = function
        return function

    return register


def render(template: str, subject: str, **context: Any) -> Composed:
    """Render ``customer_portal/email/<template>.txt`` and ``.html`` into a message.

    The message is in the language of ``context["customer"]``
    (:func:`~.formatting.locale_of`): give the ``subject`` and any words as
    lazy strings (``i18n.lazy_gettext``) so they are translated into it here.
    """
    customer = context.get("customer")
    locale = (
        locale_of(customer)
        if customer is not None
        else i18n.supported(config_value("DEFAULT_LOCALE")) or i18n.SUPPORTED_LOCALES[0]
    )
    with force_locale(locale):
        context = {**i18n.template_helpers(), "locale": i18n.current_locale(), **context}
        return Composed(
            subject=str(subject),
            text=render_template(f"customer_portal/email/{template}.txt", **context),
            html=render_template(f"customer_portal/email/{template}.html", **context),
        )


def queue(recipient: str, kind: str, **params: Any) -> OutboxMessage:
    """Add a message to the outbox in the current transaction; don't commit.

    It is sent after the transaction commits; if the transaction rolls back,
    the message goes with it.
    """
    if kind not in COMPOSERS:
        raise KeyError(f"no composer for mail of kind {kind!r}")
    session = db_session()
    message = OutboxMessage(recipient=recipient, kind=kind, params=params, status="pending")
    session.add(message)
    _dispatch_after_commit(session)
    return message


def queue_mail(customer: Customer, kind: str, **params: Any) -> OutboxMessage:
    """Queue a message of ``kind`` to ``customer``; don't commit."""
    return queue(customer.email, kind, customer_id=customer.id, **_jsonable(params))


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in params.items()}


def send_due(limit: int = 100) -> tuple[int, int]:
    """Send the messages whose time has come; return how many were sent and how many failed.

    Each message is claimed with a conditional UPDATE, so two workers never
    send the same message.
    """
    session = db_session()
    now = utcnow()
    due = session.scalars(
        select(OutboxMessage.id)
        .where(OutboxMessage.status == "pending", OutboxMessage.next_attempt_at <= now)
        .order_by(OutboxMessage.next_attempt_at)
        .limit(limit)
    ).all()
    session.commit()
    sent = failed = 0
    for message_id in due:
        outcome = _send_one(session, message_id, now)
        sent += outcome == "sent"
        failed += outcome == "failed"
    return sent, failed


def _send_one(session: Session, message_id: int, now: datetime) -> str:
    claimed = session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.id == message_id,
            OutboxMessage.status == "pending",
            OutboxMessage.next_attempt_at <= now,
        )
        .values(next_attempt_at=now + LEASE, attempts=OutboxMessage.attempts + 1)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        return "skipped"
    message = session.get(OutboxMessage, message_id)
    assert message is not None
    try:
        composed = COMPOSERS[message.kind](message)
        if composed is None:
            message.status, message.sent_at = "dropped", utcnow()
            session.commit()
            return "dropped"
        # Anything the composer wrote (a sign-in link) lands before the mail leaves.
        session.commit()
        _state().backend.send(message.recipient, composed)
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


# -- Back-ends -----------------------------------------------------------------------


class SMTPBackend:
    """Sends through Flask-Mail's settings (``MAIL_SERVER``, ...) with a time-out."""

    def send(self, recipient: str, composed: Composed) -> None:
        message = Message(
            subject=composed.subject,
            recipients=[recipient],
            body=composed.text,
            html=composed.html,
        )
        with _TimeoutConnection(current_app.extensions["mail"]) as connection:
            connection.send(message)


class _TimeoutConnection(Connection):
    # Flask-Mail opens SMTP without a time-out; a server that accepts and never
    # answers would hold the sender forever.
    def configure_host(self) -> smtplib.SMTP | smtplib.SMTP_SSL:
        timeout = config_value("MAIL_TIMEOUT")
        mail = self.mail
        host: smtplib.SMTP | smtplib.SMTP_SSL
        if mail.use_ssl:
            host = smtplib.SMTP_SSL(mail.server, mail.port, timeout=timeout)
        else:
            host = smtplib.SMTP(mail.server, mail.port, timeout=timeout)
        try:
            if mail.use_tls:
                host.starttls()
            if mail.username and mail.password:
                host.login(mail.username, mail.password)
        except BaseException:
            host.close()
            raise
        return host


@dataclass
class LocalBackend:
    """Keeps the last messages in memory for a development page; sends nothing."""

    messages: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=50))

    def send(self, recipient: str, composed: Composed) -> None:
        self.messages.appendleft({"recipient": recipient, "sent_at": utcnow(), **composed.__dict__})


def local_messages() -> list[dict[str, Any]]:
    """Return the messages the local back-end kept, newest first (development only)."""
    backend = _state().backend
    return list(backend.messages) if isinstance(backend, LocalBackend) else []


# -- Dispatch ------------------------------------------------------------------------


class Dispatcher:
    """A background thread that drains the outbox when told there is mail."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None
        self.lock = threading.Lock()

    def kick(self) -> None:
        """Make the thread look at the outbox now (starting it if need be)."""
        with self.lock:
            if self.stopping.is_set():
                return
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(
                    target=self._run, name="customer-portal-mail", daemon=True
                )
                self.thread.start()
        self.wake.set()

    def stop(self, timeout: float = 10) -> None:
        """Stop the thread after the message it is sending, if any."""
        self.stopping.set()
        self.wake.set()
        if self.thread is not None:
            self.thread.join(timeout)

    def _run(self) -> None:
        while not self.stopping.is_set():
            self.wake.wait(timeout=30)
            self.wake.clear()
            if self.stopping.is_set():
                break
            with self.app.app_context():
                try:
                    send_due()
                except Exception:  # keep the thread alive; the next kick retries
                    self.app.logger.exception("sending queued mail failed")


def init_mail(app: Flask) -> tuple[SMTPBackend | LocalBackend, Dispatcher | None]:
    """Set up Flask-Mail (unless the host did), the back-end and the dispatcher."""
    if "mail" not in app.extensions:
        Mail(app)
    backend = LocalBackend() if config_value("MAIL_BACKEND", app) == "local" else SMTPBackend()
    dispatcher = Dispatcher(app) if config_value("MAIL_DISPATCH", app) == "thread" else None
    return backend, dispatcher


_WAKE = "customer_portal_mail"


def _dispatch_after_commit(session: Session) -> None:
    dispatcher = _state().dispatcher
    if dispatcher is not None:
        session.info[_WAKE] = dispatcher


@event.listens_for(Session, "after_commit")
def _kick(session: Session) -> None:
    dispatcher = session.info.pop(_WAKE, None)
    if dispatcher is not None:
        dispatcher.kick()


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(_WAKE, None)


def _state() -> Any:
    return current_app.extensions["customer_portal"]
