"""Delivering email: the :class:`Mailer` interface, its two built-in mailers, the mail thread.

What to send, and when, is the outbox's business (:mod:`.outbox`); a mailer
only delivers one rendered message. The host may plug in its own with
``CustomerPortal(mailer=...)``: anything with a ``send(recipient, email)``
method, such as a wrapper of its transactional mail service.
"""

from __future__ import annotations

import smtplib
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

from flask import Flask, current_app
from flask_mail import Connection, Mail, Message

from .config import config_value
from .db import utcnow
from .errors import ConfigurationError


@dataclass(frozen=True)
class Email:
    """A rendered email: its subject and its plain-text and HTML bodies."""

    subject: str
    text: str
    html: str


@runtime_checkable
class Mailer(Protocol):
    """What delivers the portal's mail.

    ``send`` is called outside any request, in an app context, once per
    attempt; raising makes the outbox retry the message later with back-off.
    """

    def send(self, recipient: str, email: Email) -> None:
        """Deliver ``email`` to ``recipient`` (one address, validated)."""
        ...


class FlaskMailMailer:
    """The default: Flask-Mail's settings (``MAIL_SERVER``, ...), with a time-out."""

    def send(self, recipient: str, email: Email) -> None:
        """Deliver ``email`` over SMTP with ``CUSTOMER_PORTAL_MAIL_TIMEOUT``."""
        message = Message(
            subject=email.subject, recipients=[recipient], body=email.text, html=email.html
        )
        with _TimeoutConnection(current_app.extensions["mail"]) as connection:
            connection.send(message)


class _TimeoutConnection(Connection):
    # Flask-Mail opens SMTP without a time-out; a server that accepts and never
    # answers would hold the sender forever (M2).
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
class LocalMailer:
    """Keeps the last 50 messages in memory for a development page; sends nothing."""

    messages: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=50))

    def send(self, recipient: str, email: Email) -> None:
        """Keep ``email``, newest first."""
        self.messages.appendleft({"recipient": recipient, "sent_at": utcnow(), **asdict(email)})


def make_mailer(app: Flask, mailer: Any) -> Mailer:
    """Return the mailer ``CustomerPortal(mailer=...)`` asks for, set up on ``app``.

    ``None`` follows ``CUSTOMER_PORTAL_MAIL_BACKEND``: Flask-Mail (registered
    on ``app`` unless the host did) or the local mailer; a class is built with
    no arguments.
    """
    if mailer is None:
        if config_value("MAIL_BACKEND", app) == "local":
            return LocalMailer()
        if "mail" not in app.extensions:
            Mail(app)
        return FlaskMailMailer()
    if isinstance(mailer, type):
        mailer = mailer()
    if not isinstance(mailer, Mailer):
        raise ConfigurationError("mailer needs a send(recipient, email) method")
    return mailer


class Dispatcher:
    """A background thread that runs ``drain`` in an app context whenever it is kicked.

    The outbox kicks it after each commit that queued mail; it also looks by
    itself every 30 seconds, for retries that have come due.
    """

    def __init__(self, app: Flask, drain: Callable[[], object]) -> None:
        self.app = app
        self.drain = drain
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None
        self.lock = threading.Lock()

    def kick(self) -> None:
        """Make the thread drain now (starting it if need be)."""
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
                    self.drain()
                except Exception:  # keep the thread alive; the next kick retries
                    self.app.logger.exception("sending queued mail failed")
