"""What the portal keeps per app, in ``app.extensions["customer_portal"]``.

:meth:`.CustomerPortal.init_app` builds one :class:`PortalState` per app; the
rest of the package reaches it through :data:`.proxies.portal`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from flask import Flask
from flask.globals import app_ctx
from flask_limiter import Limiter
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, scoped_session, sessionmaker

from .invoices import InvoiceRenderer
from .mail import Dispatcher, Mailer
from .models import Customer
from .providers.base import PaymentProvider

#: The key of the portal's state in ``app.extensions``.
EXTENSION_KEY = "customer_portal"


class PortalState:
    """The portal's parts for one app, each built once at start-up.

    :param db: the host's Flask-SQLAlchemy object, or ``None`` for the embedded database.
    :param provider: the payment provider of live mode, if any.
    :param test_provider: the payment provider of test mode.
    """

    def __init__(
        self,
        *,
        db: Any,
        engine: Engine | None,
        provider: PaymentProvider | None,
        test_provider: PaymentProvider,
        invoice_renderer: InvoiceRenderer,
        mailer: Mailer,
        dispatcher: Dispatcher | None,
        limiter: Limiter,
        host_customer: Callable[[Any], Customer | None] | None,
    ) -> None:
        self.db = db
        self.provider = provider
        self.test_provider = test_provider
        self.invoice_renderer = invoice_renderer
        self.mailer = mailer
        #: Sends queued mail after each commit (``MAIL_DISPATCH = "thread"``), or ``None``.
        self.dispatcher = dispatcher
        self.limiter = limiter
        #: The host login bridge: the host's user → their portal customer, or ``None``.
        self.host_customer = host_customer
        self._engine = engine
        self._sessions: scoped_session[Session] | None = None
        if engine is not None:
            self._sessions = scoped_session(sessionmaker(bind=engine), scopefunc=_app_context_id)

    @property
    def engine(self) -> Engine:
        """The engine the portal's tables live on."""
        if self._engine is not None:
            return self._engine
        engine: Engine = self.db.engine
        return engine

    @property
    def session(self) -> Session:
        """The portal's database session in the current app context."""
        if self._sessions is not None:
            return self._sessions()
        session: Session = self.db.session
        return session

    @property
    def sessions(self) -> scoped_session[Session]:
        """The registry of the portal's sessions (to listen to their events only)."""
        if self._sessions is not None:
            return self._sessions
        sessions: scoped_session[Session] = self.db.session
        return sessions

    def remove_session(self, exc: BaseException | None = None) -> None:
        """End the embedded database's session of this app context (at its teardown)."""
        if self._sessions is not None:
            self._sessions.remove()


def embedded_engine(app: Flask, uri: str | None, options: dict[str, Any]) -> Engine:
    """Create the engine of the embedded database: ``uri``, or SQLite in the instance folder."""
    if uri is None:
        os.makedirs(app.instance_path, exist_ok=True)
        uri = "sqlite:///" + os.path.join(app.instance_path, "customer_portal.sqlite3")
    engine = create_engine(uri, **options)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
    # SQLite ignores foreign keys unless asked, per connection; wait for a
    # writer instead of failing at once with "database is locked".
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.execute("PRAGMA busy_timeout = 5000")
    cursor.close()


def _app_context_id() -> int:
    # One session per app context, as Flask-SQLAlchemy does.
    return id(app_ctx._get_current_object())  # type: ignore[attr-defined]
