"""The :class:`CustomerPortal` extension object."""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, current_app
from flask.globals import app_ctx
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, scoped_session, sessionmaker

from . import config
from .errors import ConfigurationError

EXTENSION_KEY = "customer_portal"


class PortalState:
    """What the portal keeps per app, in ``app.extensions["customer_portal"]``."""

    def __init__(self, app: Flask, *, db: Any, provider: Any) -> None:
        self.db = db
        self.provider = provider
        self._engine: Engine | None = None
        self._sessions: scoped_session[Session] | None = None
        if db is None:
            uri = config.config_value("DATABASE_URI", app) or _default_sqlite_uri(app)
            self._engine = _create_engine(uri, config.config_value("ENGINE_OPTIONS", app))
            self._sessions = scoped_session(
                sessionmaker(bind=self._engine), scopefunc=_app_context_id
            )
            app.teardown_appcontext(self._remove_session)
        elif config.config_value("DATABASE_URI", app) is not None:
            raise ConfigurationError(
                "CUSTOMER_PORTAL_DATABASE_URI is for the embedded database; "
                "it cannot be set when the portal shares the app's db"
            )

    @property
    def engine(self) -> Engine:
        """The engine the portal's tables live on."""
        if self._engine is not None:
            return self._engine
        engine: Engine = self.db.engine
        return engine

    @property
    def session(self) -> Session:
        """The session for the current app context."""
        if self._sessions is not None:
            return self._sessions()
        session: Session = self.db.session
        return session

    def _remove_session(self, exc: BaseException | None) -> None:
        assert self._sessions is not None
        self._sessions.remove()


class CustomerPortal:
    """A self-service billing portal for the customers of a Flask app.

    :param app: the app to register on; or call :meth:`init_app` later.
    :param db: the host's ``flask_sqlalchemy.SQLAlchemy`` object. The portal's
        ``portal_*`` tables then live in the host's database and use its
        session. Without it the portal keeps an embedded SQLite database in the
        app's instance folder (or at ``CUSTOMER_PORTAL_DATABASE_URI``).
    :param provider: the payment provider.
    """

    def __init__(self, app: Flask | None = None, *, db: Any = None, provider: Any = None) -> None:
        self.db = db
        self.provider = provider
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Register the portal on ``app``: settings, database, CLI."""
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError(
                "CustomerPortal is already registered on this app; create one per app"
            )
        config.apply_defaults(app)
        app.extensions[EXTENSION_KEY] = PortalState(app, db=self.db, provider=self.provider)

        from .cli import portal_cli

        app.cli.add_command(portal_cli)

    @property
    def session(self) -> Session:
        """The portal's database session in the current app context."""
        state: PortalState = current_app.extensions[EXTENSION_KEY]
        return state.session


def _default_sqlite_uri(app: Flask) -> str:
    os.makedirs(app.instance_path, exist_ok=True)
    return "sqlite:///" + os.path.join(app.instance_path, "customer_portal.sqlite3")


def _create_engine(uri: str, options: dict[str, Any]) -> Engine:
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
