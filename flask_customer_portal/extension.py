"""The :class:`CustomerPortal` extension object: where an app's portal is put together."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session
from werkzeug.middleware.proxy_fix import ProxyFix

from . import api, config, emails, i18n, invoices, mail, outbox
from .cli import portal_cli
from .errors import ConfigurationError
from .providers import TestProvider, stripe_config
from .proxies import portal
from .state import EXTENSION_KEY, PortalState, embedded_engine
from .views import register_views, webhooks
from .views.language import select_locale

#: What start-up says outside debug and testing without a live provider (O3).
NO_LIVE_PROVIDER = (
    "no payment provider for live mode: pass provider= to CustomerPortal (the portal serves "
    "live customers outside debug and testing; without one, adding a card fails with an error)"
)


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
    :param mailer: delivers the portal's mail: an instance or a class (built
        with no arguments) implementing :class:`~.mail.Mailer`; by default
        Flask-Mail, or the local mailer with ``CUSTOMER_PORTAL_MAIL_BACKEND = "local"``.
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
        mailer: Any = None,
        register_blueprint: bool = True,
    ) -> None:
        self.db = db
        self.provider = provider
        self.test_provider = test_provider
        self.staff_decorator = staff_decorator
        self.host_customer = host_customer
        self.invoice_renderer = invoice_renderer
        self.mailer = mailer
        self.register_blueprint = register_blueprint
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Register the portal on ``app``: settings, database, mail, pages, API, CLI."""
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError(
                "CustomerPortal is already registered on this app; create one per app"
            )
        config.apply_defaults(app)
        provider, test_provider = self._providers(app)
        config.check_production(app, [] if provider is not None else [NO_LIVE_PROVIDER])
        if app.config["SESSION_COOKIE_SAMESITE"] is None:
            # C2: the portal's session lives in the app's session cookie.
            app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
        thread = config.config_value("MAIL_DISPATCH", app) == "thread"
        state = PortalState(
            db=self.db,
            engine=self._embedded_engine(app),
            provider=provider,
            test_provider=TestProvider() if test_provider is None else test_provider,
            invoice_renderer=invoices.make_renderer(self.invoice_renderer),
            mailer=mail.make_mailer(app, self.mailer),
            dispatcher=mail.Dispatcher(app, emails.send_queued) if thread else None,
            limiter=Limiter(
                key_func=get_remote_address,
                app=app,
                storage_uri=config.config_value("RATELIMIT_STORAGE_URI", app),
                default_limits=[],
                application_limits=[],
                key_prefix="customer_portal",
            ),
            host_customer=self.host_customer,
        )
        app.extensions[EXTENSION_KEY] = state
        for provider in (state.test_provider, state.provider):
            if isinstance(provider, TestProvider):
                # The test provider keeps its records beside the portal's tables.
                provider.bind(lambda: state.engine)
        if self.db is None:
            # The embedded database's session ends with its app context.
            app.teardown_appcontext(state.remove_session)
        # Only the portal's own sessions wake the mail thread after a commit.
        for name, listener in (
            ("after_commit", outbox.wake_after_commit),
            ("after_rollback", outbox.forget_after_rollback),
        ):
            if not event.contains(state.sessions, name, listener):
                event.listen(state.sessions, name, listener)
        i18n.init_babel(app, select_locale)
        app.cli.add_command(portal_cli)
        if self.register_blueprint:
            prefix = config.config_value("URL_PREFIX", app)
            register_views(app, state, prefix=prefix, staff_decorator=self.staff_decorator)
            app.register_blueprint(api.create_blueprint(state), url_prefix=prefix + "/api/v1")
            hooks = webhooks.create_blueprint(state)
            app.register_blueprint(hooks, url_prefix=prefix + "/webhooks")
        hops = config.config_value("PROXY_HOPS", app)
        if hops:
            # T9: the client's address (the rate limits' key) and scheme are the ones the
            # last ``hops`` proxies saw. Not the host: links never come from it (T13), and a
            # proxy that passes a client's X-Forwarded-Host on would let the client pick it.
            app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
                app.wsgi_app, x_for=hops, x_proto=hops
            )

    def _providers(self, app: Flask) -> tuple[Any, Any]:
        """The live and test providers: those given, and Stripe's if its keys are set."""
        provider, test_provider = self.provider, self.test_provider
        configured = stripe_config.from_config(app)
        if configured is not None:
            if (provider if configured.mode == "live" else test_provider) is not None:
                raise ConfigurationError(
                    f"CUSTOMER_PORTAL_STRIPE_SECRET_KEY makes Stripe the {configured.mode}-mode "
                    f"provider, but {'provider' if configured.mode == 'live' else 'test_provider'}"
                    "= was given too: keep one"
                )
            if configured.mode == "live":
                provider = configured
                if app.debug or app.testing:
                    app.logger.warning(
                        "Stripe live keys in debug or testing mode: live customers' cards "
                        "are charged real money"
                    )
            else:
                test_provider = configured
        stripe_config.check_modes(live=provider, test=test_provider)
        return provider, test_provider

    def _embedded_engine(self, app: Flask) -> Engine | None:
        """The engine of the embedded database, or ``None`` when the portal shares the app's db."""
        if self.db is None:
            return embedded_engine(
                app,
                config.config_value("DATABASE_URI", app),
                config.config_value("ENGINE_OPTIONS", app),
            )
        for name in ("DATABASE_URI", "ENGINE_OPTIONS"):
            if config.config_value(name, app):
                raise ConfigurationError(
                    f"CUSTOMER_PORTAL_{name} is for the embedded database; "
                    "it cannot be set when the portal shares the app's db"
                )
        return None

    @property
    def session(self) -> Session:
        """The portal's database session in the current app context."""
        return portal.session
