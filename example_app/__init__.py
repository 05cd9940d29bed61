"""Acme Cloud: an example store that mounts the customer portal, as a merchant would."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from flask import Flask
from flask_login import login_required

from flask_customer_portal import ConfigurationError, CustomerPortal

#: The store's business in the portal, and the mode its staff pages show.
BUSINESS_ID = "acme"
MODE = "test"
#: The development store's secrets. Everyone who has read this file knows them, so
#: they serve in debug and testing mode only: a forged staff cookie would mint links
#: into any customer's portal.
DEVELOPMENT_SECRET_KEY = "acme-development-only"
DEVELOPMENT_STAFF_PASSWORD = "acme-staff-demo"


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Create the store: settings, its database, staff sign-in, the portal and commands.

    Settings come from ``instance/config.py`` and ``FLASK_*`` environment
    variables (``FLASK_SECRET_KEY``, ``FLASK_STAFF_PASSWORD``,
    ``FLASK_SQLALCHEMY_DATABASE_URI``), or from ``test_config`` alone. On a
    laptop, run the commands with ``--debug``: only then does the store fall
    back to its development secrets. Outside debug mode it refuses them, and
    the portal insists on its production settings (``SECRET_KEY``,
    ``CUSTOMER_PORTAL_EXTERNAL_URL``, a live payment provider, ...).
    """
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_mapping(STAFF_EMAIL="staff@example.com")
    if test_config is None:
        app.config.from_pyfile("config.py", silent=True)
        app.config.from_prefixed_env()
    else:
        app.config.from_mapping(test_config)
    if app.debug or app.testing:
        if app.config["SECRET_KEY"] is None:
            # Nothing configured: a development store, with secrets everyone knows.
            app.config["SECRET_KEY"] = DEVELOPMENT_SECRET_KEY
            app.config.setdefault("STAFF_PASSWORD", DEVELOPMENT_STAFF_PASSWORD)
        # Links point at the local server; without a mail server, sent mail is
        # kept for the /dev/mail page instead.
        port = os.environ.get("PORT", "5000")
        app.config.setdefault("CUSTOMER_PORTAL_EXTERNAL_URL", f"http://127.0.0.1:{port}")
        if not app.config.get("MAIL_SERVER"):
            app.config.setdefault("CUSTOMER_PORTAL_MAIL_BACKEND", "local")
    elif app.config.get("STAFF_PASSWORD") == DEVELOPMENT_STAFF_PASSWORD:
        # Without SECRET_KEY, or with the development one, the portal refuses to start.
        raise ConfigurationError(
            "STAFF_PASSWORD is the demo's password, which everyone knows: outside debug mode, "
            "set FLASK_STAFF_PASSWORD to a password of your own"
        )
    app.config.setdefault("MAIL_DEFAULT_SENDER", "Acme Cloud <billing@acme.example.com>")
    # The portal's pages wear the store's layout (templates/acme/portal_layout.html),
    # and templates/customer_portal/login_sent.html overrides one page.
    app.config.setdefault("CUSTOMER_PORTAL_BASE_TEMPLATE", "acme/portal_layout.html")
    if "SQLALCHEMY_DATABASE_URI" not in app.config:
        os.makedirs(app.instance_path, exist_ok=True)
        app.config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///" + os.path.join(
            app.instance_path, "acme.sqlite3"
        )

    from . import auth, cli, staff, store
    from .models import db

    db.init_app(app)
    auth.login_manager.init_app(app)
    # The portal's portal_* tables live in the store's database, beside its own;
    # its staff pages (share invite) sit behind the store's own staff login.
    CustomerPortal(app, db=db, staff_decorator=login_required)
    app.register_blueprint(store.bp)
    app.register_blueprint(staff.bp)
    app.cli.add_command(cli.init_db_command)
    app.cli.add_command(cli.seed_demo_command)
    return app
