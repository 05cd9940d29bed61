"""The :class:`CustomerPortal` extension object."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from flask import Flask, current_app
from flask.globals import app_ctx
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, scoped_session, sessionmaker

from . import config, i18n, invoices, mail
from .errors import ConfigurationError
from .providers import PaymentProvider, TestProvider

EXTENSION_KEY = "customer_portal"


class PortalState:
    """What the portal keeps per app, in ``app.extensions["customer_portal"]``."""

    #: Renders invoice downloads; set by :meth:`CustomerPortal.init_app`.
    invoice_renderer: invoices.InvoiceRenderer

    def __init__(self, app: Flask, *, db: Any, provider: Any, test_provider: Any = None) -> None:
        self.db = db
        self.provider = provider
        self.test_provider = test_provider if test_provider is not None else TestProvider()
        self.backend, self.dispatcher = mail.init_mail(app)
        self.limiter = Limiter(
            key_func=get_remote_address,
            app=app,
            storage_uri=config.config_value("RATELIMIT_STORAGE_URI", app),
            default_limits=[],
            application_limits=[],
            key_prefix="customer_portal",
        )
        self.host_customer: Callable[[Any], Any] | None = None
        self._engine: Engine | None = None
        self._sessions: scoped_session[Session] | None = None
        if db is None:
            uri = config.config_value("DATABASE_URI", app) or _default_sqlite_uri(app)
            self._engine = _create_engine(uri, config.config_value("ENGINE_OPTIONS", app))
            self._sessions = scoped_session(
                sessionmaker(bind=self._engine), scopefunc=_app_context_id
            )
            app.teardown_appcontext(self._remove_session)
        else:
            for name in ("DATABASE_URI", "ENGINE_OPTIONS"):
                if config.config_value(name, app):
                    raise ConfigurationError(
                        f"CUSTOMER_PORTAL_{name} is for the embedded database; "
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

    def provider_for(self, mode: str) -> PaymentProvider | None:
        """Return the payment provider of a mode: the test provider in test mode."""
        provider: PaymentProvider | None = self.test_provider if mode == "test" else self.provider
        return provider

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
    :param provider: the payment provider of live mode (a
        :class:`~.providers.PaymentProvider`).
    :param test_provider: the payment provider of test mode; the embedded
        :class:`~.providers.TestProvider` by default (a new one per app), whose
        card and challenge pages are served under ``<URL_PREFIX>/test-provider``.
    :param staff_decorator: protects the staff pages (the share-invite page),
        such as Flask-Login's ``login_required`` or a check of your own. Without
        it the staff pages are not registered at all.
    :param host_customer: the host login bridge: a function given the host's
        Flask-Login ``current_user`` that returns the portal
        :class:`~.models.Customer` it is, or ``None``. Without it the bridge
        page is not registered.
    :param invoice_renderer: renders invoice downloads: an instance or a class
        (built with no arguments) implementing
        :class:`~.invoices.InvoiceRenderer`; the reportlab PDF renderer by default.
    :param register_blueprint: ``False`` to register none of the portal's
        views (mount your own around the domain functions).
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        db: Any = None,
        provider: Any = None,
        test_provider: Any = None,
        staff_decorator: Callable[[Callable[..., Any]], Callable[..., Any]] | None = None,
        host_customer: Callable[[Any], Any] | None = None,
        invoice_renderer: Any = None,
        register_blueprint: bool = True,
    ) -> None:
        self.db = db
        self.provider = provider
        self.test_provider = test_provider
        self.staff_decorator = staff_decorator
        self.host_customer = host_customer
        self.invoice_renderer = invoice_renderer
        self.register_blueprint = register_blueprint
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Register the portal on ``app``: settings, database, CLI."""
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError(
                "CustomerPortal is already registered on this app; create one per app"
            )
        config.apply_defaults(app)
        _secure_cookie_defaults(app)
        renderer = invoices.make_renderer(self.invoice_renderer)
        state = PortalState(
            app, db=self.db, provider=self.provider, test_provider=self.test_provider
        )
        state.host_customer = self.host_customer
        state.invoice_renderer = renderer
        app.extensions[EXTENSION_KEY] = state

        from .views.language import select_locale

        i18n.init_babel(app, select_locale)

        from .cli import portal_cli

        app.cli.add_command(portal_cli)
        if self.register_blueprint:
            from . import api, views
            from .providers import pages as provider_pages

            prefix = config.config_value("URL_PREFIX", app)
            app.register_blueprint(views.create_blueprint(state, self), url_prefix=prefix)
            app.register_blueprint(api.create_blueprint(state), url_prefix=prefix + "/api/v1")
            app.register_blueprint(
                provider_pages.create_blueprint(), url_prefix=prefix + "/test-provider"
            )
            if self.staff_decorator is not None:
                app.register_blueprint(
                    views.create_staff_blueprint(self.staff_decorator), url_prefix=prefix
                )

    @property
    def session(self) -> Session:
        """The portal's database session in the current app context."""
        state: PortalState = current_app.extensions[EXTENSION_KEY]
        return state.session


def _secure_cookie_defaults(app: Flask) -> None:
    # C2: the portal's session lives in the app's session cookie. Production
    # runs on https (EXTERNAL_URL must be https there), so the cookie is Secure.
    if app.config.get("SESSION_COOKIE_SAMESITE") is None:
        app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    if not (app.debug or app.testing):
        app.config["SESSION_COOKIE_SECURE"] = True


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
