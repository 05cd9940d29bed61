"""Configuration keys, their defaults, and the one strict reader for them.

Every key is ``CUSTOMER_PORTAL_<NAME>`` in the Flask config. :func:`config_value`
is the only way the package reads them; it raises on a name that is not defined
here, so a typo in the code fails at once instead of reading ``None``.
"""

from __future__ import annotations

import difflib
import re
from typing import Any
from urllib.parse import urlsplit

from babel import Locale, UnknownLocaleError
from flask import Flask, current_app

from .errors import ConfigurationError
from .models import MODES

PREFIX = "CUSTOMER_PORTAL_"

#: Every setting with its default. ``None`` means "derived at start-up".
DEFAULTS: dict[str, Any] = {
    # SQLAlchemy URL of the embedded database, used only when no ``db`` is given.
    # Defaults to ``customer_portal.sqlite3`` in the app's instance folder.
    "DATABASE_URI": None,
    # Extra keyword arguments for ``create_engine`` of the embedded database.
    "ENGINE_OPTIONS": {},
    # Where the portal's pages are mounted.
    "URL_PREFIX": "/portal",
    # The mode the CLI and the data API use when none is named: "test" or "live".
    "DEFAULT_MODE": "test",
    # The locale of a new business when none is given.
    "DEFAULT_LOCALE": "en",
    # The scheme and host every link is built from, such as "https://shop.example.com".
    # Required outside debug and testing: links never come from the request's Host.
    "EXTERNAL_URL": None,
    # Seconds an emailed sign-in link stays valid (single use).
    "LOGIN_LINK_TTL": 30 * 60,
    # Seconds a dynamic link (create_portal_session) stays valid (single use).
    "SESSION_LINK_TTL": 24 * 60 * 60,
    # Seconds a portal session lasts at most after sign-in.
    "SESSION_LIFETIME": 24 * 60 * 60,
    # Seconds of inactivity after which a portal session ends.
    "SESSION_IDLE_TIMEOUT": 2 * 60 * 60,
    # Seconds after sign-in during which sensitive actions need no fresh sign-in.
    "RECENT_SIGN_IN": 15 * 60,
    # Extra origins (scheme://host[:port]) a return_url may point to, besides EXTERNAL_URL's.
    "RETURN_URL_ORIGINS": [],
    # Origins of the payment provider's hosted pages (card entry, 3-D Secure), which
    # the portal's forms redirect to: the page's CSP allows them as form targets.
    "PROVIDER_ORIGINS": [],
    # Flask-Limiter storage; shared (such as "redis://...") in production.
    "RATELIMIT_STORAGE_URI": "memory://",
    # Sign-in link requests, per client IP and per email address.
    "LOGIN_RATE_LIMIT_IP": "10 per minute; 50 per hour",
    "LOGIN_RATE_LIMIT_EMAIL": "5 per hour",
    # Opening sign-in links, per client IP.
    "REDEEM_RATE_LIMIT": "30 per minute",
    # The HTTP API, per API key.
    "API_RATE_LIMIT": "120 per minute",
    # "smtp" sends through Flask-Mail; "local" keeps messages for a development page.
    "MAIL_BACKEND": "smtp",
    # Seconds an SMTP connection may take to answer before the attempt fails.
    "MAIL_TIMEOUT": 10,
    # Attempts before a message is given up; retries back off exponentially.
    "MAIL_MAX_ATTEMPTS": 8,
    # The template every page extends; point it at a layout of your own site
    # (which itself extends "customer_portal/base.html" or fills the same blocks).
    "BASE_TEMPLATE": "customer_portal/base.html",
    # "light", "dark" or "auto" (follow the customer's system setting).
    "COLOR_SCHEME": "auto",
    # The accent colour (#rrggbb) for links and focus rings; the brand colour when unset.
    "ACCENT_COLOR": None,
    # "thread" sends queued mail in the background right after commit; "manual"
    # leaves it to `flask portal send-mail` (run it from cron or a worker).
    "MAIL_DISPATCH": "thread",
}

_TYPES: dict[str, type | tuple[type, ...]] = {
    "DATABASE_URI": (str, type(None)),
    "ENGINE_OPTIONS": dict,
    "URL_PREFIX": str,
    "DEFAULT_MODE": str,
    "DEFAULT_LOCALE": str,
    "EXTERNAL_URL": (str, type(None)),
    "LOGIN_LINK_TTL": int,
    "SESSION_LINK_TTL": int,
    "SESSION_LIFETIME": int,
    "SESSION_IDLE_TIMEOUT": int,
    "RECENT_SIGN_IN": int,
    "RETURN_URL_ORIGINS": (list, tuple),
    "PROVIDER_ORIGINS": (list, tuple),
    "RATELIMIT_STORAGE_URI": str,
    "LOGIN_RATE_LIMIT_IP": str,
    "LOGIN_RATE_LIMIT_EMAIL": str,
    "REDEEM_RATE_LIMIT": str,
    "API_RATE_LIMIT": str,
    "MAIL_BACKEND": str,
    "MAIL_TIMEOUT": (int, float),
    "MAIL_MAX_ATTEMPTS": int,
    "MAIL_DISPATCH": str,
    "BASE_TEMPLATE": str,
    "COLOR_SCHEME": str,
    "ACCENT_COLOR": (str, type(None)),
}


def apply_defaults(app: Flask) -> None:
    """Fill in every missing key with its default, then check the whole set."""
    for name, default in DEFAULTS.items():
        app.config.setdefault(PREFIX + name, default)
    check(app)


def check(app: Flask) -> None:
    """Raise :class:`ConfigurationError` on an unknown key or a value of the wrong kind."""
    for key in app.config:
        if key.startswith(PREFIX) and key[len(PREFIX) :] not in DEFAULTS:
            near = difflib.get_close_matches(key[len(PREFIX) :], DEFAULTS, n=1)
            hint = f"; did you mean {PREFIX}{near[0]}?" if near else ""
            raise ConfigurationError(f"unknown setting {key}{hint}")
    for name, expected in _TYPES.items():
        value = app.config[PREFIX + name]
        if not isinstance(value, expected):
            raise ConfigurationError(f"{PREFIX}{name} has the wrong type: {value!r}")
    prefix = app.config[PREFIX + "URL_PREFIX"]
    if not prefix.startswith("/") or prefix.endswith("/"):
        raise ConfigurationError(
            f"{PREFIX}URL_PREFIX must start with '/' and not end with one: {prefix!r}"
        )
    if app.config[PREFIX + "DEFAULT_MODE"] not in MODES:
        raise ConfigurationError(f"{PREFIX}DEFAULT_MODE must be 'test' or 'live'")
    accent = app.config[PREFIX + "ACCENT_COLOR"]
    if accent is not None and not re.fullmatch(r"#[0-9a-fA-F]{6}", accent):
        raise ConfigurationError(f"{PREFIX}ACCENT_COLOR must be a colour like #1a73e8")
    try:
        Locale.parse(app.config[PREFIX + "DEFAULT_LOCALE"])
    except (ValueError, UnknownLocaleError):
        raise ConfigurationError(f"{PREFIX}DEFAULT_LOCALE is not a known locale") from None
    for name, choices in (
        ("MAIL_BACKEND", ("smtp", "local")),
        ("MAIL_DISPATCH", ("thread", "manual")),
        ("COLOR_SCHEME", ("light", "dark", "auto")),
    ):
        if app.config[PREFIX + name] not in choices:
            raise ConfigurationError(f"{PREFIX}{name} must be one of {', '.join(choices)}")
    for name in (
        "LOGIN_LINK_TTL",
        "SESSION_LINK_TTL",
        "SESSION_LIFETIME",
        "SESSION_IDLE_TIMEOUT",
        "RECENT_SIGN_IN",
    ):
        if app.config[PREFIX + name] <= 0:
            raise ConfigurationError(f"{PREFIX}{name} must be a positive number of seconds")
    for name, url in [("EXTERNAL_URL", app.config[PREFIX + "EXTERNAL_URL"])] + [
        (key, origin)
        for key in ("RETURN_URL_ORIGINS", "PROVIDER_ORIGINS")
        for origin in app.config[PREFIX + key]
    ]:
        if url is not None and not _is_origin(url):
            raise ConfigurationError(
                f"{PREFIX}{name} must be an origin like https://shop.example.com "
                f"(a scheme and a host, no path, no trailing '/'): {url!r}"
            )
    if not (app.debug or app.testing):
        _check_production(app)


def _is_origin(url: object) -> bool:
    if not isinstance(url, str):
        return False
    parts = urlsplit(url)
    return (
        parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and f"{parts.scheme}://{parts.netloc}" == url
    )


def _check_production(app: Flask) -> None:
    """Refuse settings that are fine on a laptop and dangerous on a server (O3)."""
    url = app.config[PREFIX + "EXTERNAL_URL"]
    if url is None or not url.startswith("https://"):
        raise ConfigurationError(
            f"{PREFIX}EXTERNAL_URL must be set to the site's https:// address in production "
            "(links are never built from the request's Host)"
        )
    if app.config[PREFIX + "RATELIMIT_STORAGE_URI"].startswith("memory://"):
        raise ConfigurationError(
            f"{PREFIX}RATELIMIT_STORAGE_URI is memory:// in production: each process would "
            "count alone; use a shared storage such as redis://"
        )
    if app.config[PREFIX + "MAIL_BACKEND"] == "local":
        raise ConfigurationError(f"{PREFIX}MAIL_BACKEND 'local' is for development only")
    if not app.config["SESSION_COOKIE_SECURE"]:
        raise ConfigurationError(
            "SESSION_COOKIE_SECURE must be True in production: the portal's session lives in "
            "the app's session cookie, which must travel over https only"
        )
    if not app.config.get("MAIL_DEFAULT_SENDER"):
        raise ConfigurationError(
            "MAIL_DEFAULT_SENDER must be set: the portal mails sign-in links from it"
        )


def config_value(name: str, app: Flask | None = None) -> Any:
    """Return the setting ``CUSTOMER_PORTAL_<name>`` of ``app`` (default: the current app)."""
    if name not in DEFAULTS:
        raise KeyError(f"{PREFIX}{name} is not a flask-customer-portal setting")
    return (app or current_app).config[PREFIX + name]
