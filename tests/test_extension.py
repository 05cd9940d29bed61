"""Registering the extension: per-app state, strict settings, loud errors."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask

import flask_customer_portal as portal
from flask_customer_portal import ConfigurationError, CustomerPortal
from flask_customer_portal import models as m
from flask_customer_portal.config import config_value
from flask_customer_portal.providers import TestProvider


def bare_app(instance_path: Path) -> Flask:
    app = Flask("host", instance_path=str(instance_path))
    app.testing = True
    return app


def test_state_lives_in_app_extensions(tmp_path: Path) -> None:
    app = bare_app(tmp_path)
    portal = CustomerPortal()
    portal.init_app(app)
    assert "customer_portal" in app.extensions
    assert not hasattr(portal, "app")
    assert app.config["CUSTOMER_PORTAL_URL_PREFIX"] == "/portal"


def test_one_extension_object_serves_two_apps(tmp_path: Path) -> None:
    portal = CustomerPortal()
    first = bare_app(tmp_path / "one")
    second = bare_app(tmp_path / "two")
    portal.init_app(first)
    portal.init_app(second)
    assert first.extensions["customer_portal"] is not second.extensions["customer_portal"]


def test_registering_twice_is_an_error(tmp_path: Path) -> None:
    app = bare_app(tmp_path)
    CustomerPortal(app)
    with pytest.raises(RuntimeError, match="already registered"):
        CustomerPortal(app)


def test_a_misspelled_setting_is_refused_with_a_suggestion(tmp_path: Path) -> None:
    app = bare_app(tmp_path)
    app.config["CUSTOMER_PORTAL_URL_PREFX"] = "/billing"
    with pytest.raises(ConfigurationError, match="did you mean CUSTOMER_PORTAL_URL_PREFIX"):
        CustomerPortal(app)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("CUSTOMER_PORTAL_URL_PREFIX", "portal", "must start with '/'"),
        ("CUSTOMER_PORTAL_URL_PREFIX", "/portal/", "not end with one"),
        ("CUSTOMER_PORTAL_DEFAULT_MODE", "prod", "'test' or 'live'"),
        ("CUSTOMER_PORTAL_ENGINE_OPTIONS", "pool_size=5", "wrong type"),
        ("CUSTOMER_PORTAL_DEFAULT_LOCALE", "xx_QQ", "not a known locale"),
        ("CUSTOMER_PORTAL_PROXY_HOPS", -1, "0 or more"),
        ("CUSTOMER_PORTAL_RETENTION_DAYS", 0, "positive number of days"),
    ],
)
def test_bad_values_are_refused_naming_the_key(
    tmp_path: Path, key: str, value: object, message: str
) -> None:
    app = bare_app(tmp_path)
    app.config[key] = value
    with pytest.raises(ConfigurationError, match=message) as error:
        CustomerPortal(app)
    assert key in str(error.value)


def test_an_embedded_database_uri_with_a_shared_db_is_refused(tmp_path: Path) -> None:
    from flask_sqlalchemy import SQLAlchemy

    app = bare_app(tmp_path)
    app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{tmp_path / 'host.db'}"
    app.config["CUSTOMER_PORTAL_DATABASE_URI"] = f"sqlite:///{tmp_path / 'portal.db'}"
    db = SQLAlchemy(app)
    with pytest.raises(ConfigurationError, match="CUSTOMER_PORTAL_DATABASE_URI"):
        CustomerPortal(app, db=db)


def test_without_a_db_the_portal_keeps_sqlite_in_the_instance_folder(tmp_path: Path) -> None:
    app = bare_app(tmp_path / "instance")
    CustomerPortal(app)
    engine = app.extensions["customer_portal"].engine
    assert engine.url.database == str(tmp_path / "instance" / "customer_portal.sqlite3")


def test_reading_an_unknown_setting_is_an_error(app: Flask) -> None:
    with pytest.raises(KeyError, match="CUSTOMER_PORTAL_URL_PREFX"):
        config_value("URL_PREFX")
    assert config_value("DEFAULT_MODE") == "test"


PRODUCTION = {
    "SECRET_KEY": "5f2b9c0e8d7a4c1e9b3f6a2d8c4e0b7f",
    "SESSION_COOKIE_SECURE": True,
    "CUSTOMER_PORTAL_EXTERNAL_URL": "https://shop.example.com",
    "CUSTOMER_PORTAL_RATELIMIT_STORAGE_URI": "redis://127.0.0.1:6379",
    "MAIL_DEFAULT_SENDER": "billing@shop.example.com",
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"CUSTOMER_PORTAL_EXTERNAL_URL": None}, "EXTERNAL_URL must be set"),
        ({"CUSTOMER_PORTAL_EXTERNAL_URL": "http://shop.example.com"}, "EXTERNAL_URL"),
        ({"CUSTOMER_PORTAL_RATELIMIT_STORAGE_URI": "memory://"}, "shared storage"),
        ({"CUSTOMER_PORTAL_MAIL_BACKEND": "local"}, "development only"),
        ({"MAIL_DEFAULT_SENDER": None}, "MAIL_DEFAULT_SENDER must be set"),
        ({"CUSTOMER_PORTAL_EXTERNAL_URL": "https://shop.example.com/portal"}, "no path"),
        ({"CUSTOMER_PORTAL_RETURN_URL_ORIGINS": ["https://www.example.com/"]}, "no path"),
        ({"CUSTOMER_PORTAL_RECENT_SIGN_IN": 0}, "positive"),
        ({"SECRET_KEY": None}, "SECRET_KEY is not set"),
        ({"SECRET_KEY": "s" * 31}, "SECRET_KEY is too short"),
        ({"SECRET_KEY": b"s" * 31}, "SECRET_KEY is too short"),
        ({"SECRET_KEY": "changeme"}, "SECRET_KEY is a development value"),
        ({"SECRET_KEY": "acme-development-only"}, "SECRET_KEY is a development value"),
        ({"SESSION_COOKIE_SECURE": False}, "SESSION_COOKIE_SECURE must be True"),
    ],
)
def test_an_unsafe_production_configuration_is_refused_at_start_up(
    tmp_path: Path, change: dict, message: str
) -> None:
    """O3, T9: outside debug and testing, start-up refuses unsafe settings."""
    app = Flask("host", instance_path=str(tmp_path))
    app.config.update(PRODUCTION | change)
    with pytest.raises(ConfigurationError, match=message):
        CustomerPortal(app, provider=TestProvider())


def test_a_safe_production_configuration_starts(tmp_path: Path) -> None:
    app = Flask("host", instance_path=str(tmp_path))
    app.config.update(PRODUCTION)
    CustomerPortal(app, provider=TestProvider())
    assert app.extensions["customer_portal"]


def test_every_unsafe_setting_is_named_in_one_error_with_its_fix(tmp_path: Path) -> None:
    """O3: an operator fixes the whole list at once instead of one problem per deploy."""
    app = Flask("host", instance_path=str(tmp_path))
    app.config["CUSTOMER_PORTAL_MAIL_BACKEND"] = "local"
    with pytest.raises(ConfigurationError) as error:
        CustomerPortal(app)
    problems = [line for line in str(error.value).splitlines() if line.startswith("- ")]
    starts = [
        "- SECRET_KEY is not set: set it to a long random value",
        "- CUSTOMER_PORTAL_EXTERNAL_URL must be set to the site's https:// address",
        "- CUSTOMER_PORTAL_RATELIMIT_STORAGE_URI is memory://",
        "- CUSTOMER_PORTAL_MAIL_BACKEND 'local' is for development only",
        "- MAIL_DEFAULT_SENDER must be set",
        "- SESSION_COOKIE_SECURE must be True",
        "- no payment provider for live mode",
    ]
    assert len(problems) == len(starts)
    for problem, start in zip(problems, starts, strict=True):
        assert problem.startswith(start), problem
    fixes = ["token_hex(32)", "https://shop", "redis://", "'smtp'", "billing@", "https", "pass"]
    for problem, fix in zip(problems, fixes, strict=True):
        assert fix in problem.split(":", 1)[1], problem
    assert "customer_portal" not in app.extensions


def test_live_mode_without_a_payment_provider_is_refused(tmp_path: Path) -> None:
    """O3: without one, a live customer adding a card would get an error page."""
    app = Flask("host", instance_path=str(tmp_path))
    app.config.update(PRODUCTION)
    with pytest.raises(ConfigurationError) as error:
        CustomerPortal(app)
    message = str(error.value)
    assert message.count("\n- ") == 1
    assert "no payment provider for live mode: pass provider= to CustomerPortal" in message


@pytest.mark.parametrize("uri", ["redis://cache:6379/0", "rediss://:pw@cache:6380/0"])
def test_a_redis_storage_without_the_redis_extra_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, uri: str
) -> None:
    """O3, T9: the missing client is named at start-up, not at the first rate-limited request."""
    monkeypatch.setitem(sys.modules, "redis", None)  # ``import redis`` now fails
    app = Flask("host", instance_path=str(tmp_path))
    app.config.update(PRODUCTION | {"CUSTOMER_PORTAL_RATELIMIT_STORAGE_URI": uri})
    with pytest.raises(ConfigurationError) as error:
        CustomerPortal(app, provider=TestProvider())
    message = str(error.value)
    assert 'pip install "flask-customer-portal[redis]"' in message
    assert ":pw@" not in message, "a password in the URI stays out of the message"


def test_debug_and_testing_skip_the_production_checks(tmp_path: Path) -> None:
    for mode in ("DEBUG", "TESTING"):
        app = Flask("host", instance_path=str(tmp_path / mode))
        app.config[mode] = True
        CustomerPortal(app)
        assert app.extensions["customer_portal"]


def test_without_the_portals_views_a_link_names_the_view_it_needs(
    database_url: str, app_factory: Callable[..., Flask]
) -> None:
    """register_blueprint=False: links need views under the portal's endpoint names."""
    app = app_factory(database_url, portal_options={"register_blueprint": False})
    with app.app_context():
        business = portal.create_business("Acme Cloud", public_id="acme")
        customer = portal.upsert_customer(business, "ana@example.com")
        with pytest.raises(ConfigurationError, match="'customer_portal.test_open_link'"):
            portal.create_portal_session(customer)
        session = app.extensions["customer_portal"].session
        assert session.scalar(sa.select(sa.func.count()).select_from(m.LoginLink)) == 0
