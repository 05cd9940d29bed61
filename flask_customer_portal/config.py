"""Configuration keys, their defaults, and the one strict reader for them.

Every key is ``CUSTOMER_PORTAL_<NAME>`` in the Flask config. :func:`config_value`
is the only way the package reads them; it raises on a name that is not defined
here, so a typo in the code fails at once instead of reading ``None``.
"""

from __future__ import annotations

import difflib
from typing import Any

from flask import Flask, current_app

from .errors import ConfigurationError

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
}

_TYPES: dict[str, type | tuple[type, ...]] = {
    "DATABASE_URI": (str, type(None)),
    "ENGINE_OPTIONS": dict,
    "URL_PREFIX": str,
    "DEFAULT_MODE": str,
    "DEFAULT_LOCALE": str,
}

MODES = ("test", "live")


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


def config_value(name: str, app: Flask | None = None) -> Any:
    """Return the setting ``CUSTOMER_PORTAL_<name>`` of ``app`` (default: the current app)."""
    if name not in DEFAULTS:
        raise KeyError(f"{PREFIX}{name} is not a flask-customer-portal setting")
    return (app or current_app).config[PREFIX + name]
