"""Configuration keys, their defaults, and the one strict reader for them.

Every key is ``CUSTOMER_PORTAL_<NAME>`` in the Flask config. :func:`config_value`
is the only way the package reads them; it raises on a name that is not defined
here, so a typo in the code fails at once instead of reading ``None``.
"""

from __future__ import annotations

import difflib
import importlib
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from babel import Locale, UnknownLocaleError
from flask import Flask, current_app

from .errors import ConfigurationError
from .models import MODES

PREFIX = "CUSTOMER_PORTAL_"

#: The shortest ``SECRET_KEY`` allowed in production (O3); ``secrets.token_hex(32)`` has 64.
MIN_SECRET_KEY_LENGTH = 32
#: Secret keys from tutorials and examples, this package's example store among them:
#: everyone knows them, so production refuses them (O3), compared trimmed and in lower case.
DEVELOPMENT_SECRET_KEYS = frozenset(
    {
        "dev",
        "development",
        "secret",
        "secret-key",
        "secret_key",
        "secretkey",
        "changeme",
        "change-me",
        "change_me",
        "test",
        "testing",
        "acme-development-only",
    }
)

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
    # Seconds a payment may wait for the customer's bank (3-D Secure) before it is
    # closed at the provider and fails: a customer who abandons the step can try again.
    "ACTION_TIMEOUT": 30 * 60,
    # Extra origins (scheme://host[:port]) a return_url may point to, besides EXTERNAL_URL's.
    "RETURN_URL_ORIGINS": [],
    # Origins of the payment provider's hosted pages (card entry, 3-D Secure), which
    # the portal's forms redirect to: the page's CSP allows them as form targets.
    "PROVIDER_ORIGINS": [],
    # Flask-Limiter storage; shared (such as "redis://...") in production.
    "RATELIMIT_STORAGE_URI": "memory://",
    # Sign-in link requests, per client IP; per email address of a business from one
    # client IP; and per email address of a business from all client IPs together.
    "LOGIN_RATE_LIMIT_IP": "10 per minute; 50 per hour",
    "LOGIN_RATE_LIMIT_EMAIL": "5 per hour",
    "LOGIN_RATE_LIMIT_EMAIL_ALL_IPS": "20 per hour",
    # Opening sign-in links, per client IP.
    "REDEEM_RATE_LIMIT": "30 per minute",
    # The HTTP API, per API key.
    "API_RATE_LIMIT": "120 per minute",
    # Requests to the HTTP API with a missing or wrong key, per client IP.
    "API_AUTH_FAILURE_RATE_LIMIT": "10 per minute; 100 per hour",
    # Seconds browsers keep to https for the site after a portal page (Strict-Transport-Security);
    # 0 sends no header; None: one year, except in debug and testing (none then).
    "HSTS_MAX_AGE": None,
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
    # How many reverse proxies stand in front of the app; 0 (none) trusts no forwarded header.
    "PROXY_HOPS": 0,
    # Days `flask portal purge` keeps used links, ended sessions and sent mail.
    "RETENTION_DAYS": 30,
    # Stripe (the stripe extra): the secret key (sk_test_... or sk_live_...), the
    # publishable key of the same mode, and the webhook endpoints' signing secrets
    # (whsec_...: one, or a list, for test and live mode's endpoints or while rolling
    # one). With the keys set, Stripe is the payment provider of the keys' mode.
    "STRIPE_SECRET_KEY": None,
    "STRIPE_PUBLISHABLE_KEY": None,
    "STRIPE_WEBHOOK_SECRET": None,
    # Where the card and 3-D Secure pages load Stripe.js from.
    "STRIPE_JS_URL": "https://js.stripe.com/v3/",
    # Stripe's API address: leave None (Stripe's own); a local fake's in tests.
    "STRIPE_API_BASE": None,
    # Stripe webhook deliveries, per business's endpoint.
    "STRIPE_WEBHOOK_RATE_LIMIT": "600 per minute",
    # The reasons a cancelling customer chooses from, where the business asks: a dict of a
    # business's public id (or "*" for every other business) to a list of (code, label)
    # pairs. Businesses it does not cover get the built-in list (DEFAULT_REASONS).
    "CANCELLATION_REASONS": {},
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
    "ACTION_TIMEOUT": int,
    "RETURN_URL_ORIGINS": (list, tuple),
    "PROVIDER_ORIGINS": (list, tuple),
    "RATELIMIT_STORAGE_URI": str,
    "LOGIN_RATE_LIMIT_IP": str,
    "LOGIN_RATE_LIMIT_EMAIL": str,
    "LOGIN_RATE_LIMIT_EMAIL_ALL_IPS": str,
    "REDEEM_RATE_LIMIT": str,
    "API_RATE_LIMIT": str,
    "API_AUTH_FAILURE_RATE_LIMIT": str,
    "HSTS_MAX_AGE": (int, type(None)),
    "MAIL_BACKEND": str,
    "MAIL_TIMEOUT": (int, float),
    "MAIL_MAX_ATTEMPTS": int,
    "MAIL_DISPATCH": str,
    "BASE_TEMPLATE": str,
    "COLOR_SCHEME": str,
    "ACCENT_COLOR": (str, type(None)),
    "PROXY_HOPS": int,
    "RETENTION_DAYS": int,
    "STRIPE_SECRET_KEY": (str, type(None)),
    "STRIPE_PUBLISHABLE_KEY": (str, type(None)),
    "STRIPE_WEBHOOK_SECRET": (str, list, tuple, type(None)),
    "STRIPE_JS_URL": str,
    "STRIPE_API_BASE": (str, type(None)),
    "STRIPE_WEBHOOK_RATE_LIMIT": str,
    "CANCELLATION_REASONS": dict,
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
        "ACTION_TIMEOUT",
    ):
        if app.config[PREFIX + name] <= 0:
            raise ConfigurationError(f"{PREFIX}{name} must be a positive number of seconds")
    hsts = app.config[PREFIX + "HSTS_MAX_AGE"]
    if hsts is not None and (isinstance(hsts, bool) or hsts < 0):
        raise ConfigurationError(f"{PREFIX}HSTS_MAX_AGE must be a number of seconds, or 0 (off)")
    if app.config[PREFIX + "PROXY_HOPS"] < 0:
        raise ConfigurationError(f"{PREFIX}PROXY_HOPS must be 0 or more (0: no proxy)")
    if app.config[PREFIX + "RETENTION_DAYS"] <= 0:
        raise ConfigurationError(f"{PREFIX}RETENTION_DAYS must be a positive number of days")
    _check_stripe(app)
    _check_cancellation_reasons(app.config[PREFIX + "CANCELLATION_REASONS"])
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


def stripe_key_mode(key: str, kind: str = "sk") -> str | None:
    """Return ``"test"`` or ``"live"`` for a Stripe key of ``kind`` (``sk``, ``pk``), or ``None``.

    Restricted secret keys (``rk_``) count as secret keys.
    """
    for prefix in ("sk", "rk") if kind == "sk" else (kind,):
        for mode in MODES:
            if key.startswith(f"{prefix}_{mode}_") and len(key) > len(prefix) + len(mode) + 2:
                return mode
    return None


def _check_stripe(app: Flask) -> None:
    secret, publishable, signing = (
        app.config[PREFIX + "STRIPE_" + name]
        for name in ("SECRET_KEY", "PUBLISHABLE_KEY", "WEBHOOK_SECRET")
    )
    if secret is None and publishable is None:
        return
    mode = stripe_key_mode(secret or "")
    if mode is None:
        raise ConfigurationError(
            f"{PREFIX}STRIPE_SECRET_KEY must be a Stripe secret key (sk_test_... or sk_live_...)"
        )
    if stripe_key_mode(publishable or "", "pk") != mode:
        raise ConfigurationError(
            f"{PREFIX}STRIPE_PUBLISHABLE_KEY must be the publishable key (pk_{mode}_...) "
            f"of the same Stripe mode as the secret key ({mode})"
        )
    signings = [signing] if isinstance(signing, str) else list(signing or ())
    if not all(isinstance(each, str) and each.startswith("whsec_") for each in signings):
        raise ConfigurationError(
            f"{PREFIX}STRIPE_WEBHOOK_SECRET must be the endpoint's signing secret (whsec_...)"
        )
    for name in ("STRIPE_JS_URL", "STRIPE_API_BASE"):
        url = app.config[PREFIX + name]
        if url is not None and urlsplit(url).scheme not in ("http", "https"):
            raise ConfigurationError(f"{PREFIX}{name} must be an http(s) URL: {url!r}")


def _is_origin(url: object) -> bool:
    if not isinstance(url, str):
        return False
    parts = urlsplit(url)
    return (
        parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and f"{parts.scheme}://{parts.netloc}" == url
    )


def check_production(app: Flask, more: Sequence[str] = ()) -> None:
    """Outside debug and testing, refuse an unsafe configuration in one error (O3).

    The message lists every problem with its fix: the settings' (below) and
    ``more``, the problems the caller found (such as a missing live provider).
    """
    if app.debug or app.testing:
        return
    problems = [*_production_problems(app), *more]
    if problems:
        raise ConfigurationError(
            "this app is in neither debug nor testing mode, and its configuration is unsafe "
            "for production; fix each of these:\n" + "\n".join(f"- {p}" for p in problems)
        )


_NEW_KEY = 'set it to a long random value: python -c "import secrets; print(secrets.token_hex(32))"'


def _production_problems(app: Flask) -> list[str]:
    """Return what is fine on a laptop and dangerous on a server, each with its fix."""
    problems = []
    key = app.config["SECRET_KEY"]
    if not key:
        problems.append(f"SECRET_KEY is not set: {_NEW_KEY}")
    elif _text(key).strip().lower() in DEVELOPMENT_SECRET_KEYS:
        problems.append(f"SECRET_KEY is a development value everyone knows: {_NEW_KEY}")
    elif len(key) < MIN_SECRET_KEY_LENGTH:
        problems.append(
            f"SECRET_KEY is too short (under {MIN_SECRET_KEY_LENGTH} characters): {_NEW_KEY}"
        )
    url = app.config[PREFIX + "EXTERNAL_URL"]
    if url is None or not url.startswith("https://"):
        problems.append(
            f"{PREFIX}EXTERNAL_URL must be set to the site's https:// address in production, "
            "such as https://shop.example.com (links are never built from the request's Host)"
        )
    storage = app.config[PREFIX + "RATELIMIT_STORAGE_URI"]
    if storage.startswith("memory://"):
        problems.append(
            f"{PREFIX}RATELIMIT_STORAGE_URI is memory:// in production: each process would "
            "count alone; use a shared storage such as redis://localhost:6379/0"
        )
    elif urlsplit(storage).scheme.split("+")[0] in ("redis", "rediss") and not _importable("redis"):
        # The limits library would refuse it too, without naming the extra that brings it.
        problems.append(
            f"{PREFIX}RATELIMIT_STORAGE_URI is a Redis storage, but the Redis client is not "
            'installed: pip install "flask-customer-portal[redis]"'
        )
    if app.config[PREFIX + "MAIL_BACKEND"] == "local":
        problems.append(
            f"{PREFIX}MAIL_BACKEND 'local' is for development only: it sends nothing; "
            "set it to 'smtp' (the default) and configure the mail server (MAIL_SERVER, ...)"
        )
    if not app.config.get("MAIL_DEFAULT_SENDER"):
        problems.append(
            "MAIL_DEFAULT_SENDER must be set: the portal mails sign-in links from it, "
            "such as 'Acme <billing@acme.example.com>'"
        )
    if stripe_key_mode(app.config[PREFIX + "STRIPE_SECRET_KEY"] or "") == "test":
        problems.append(
            f"{PREFIX}STRIPE_SECRET_KEY is a test key (sk_test_...): Stripe then serves test "
            "mode only and takes no real money; set the live keys (sk_live_..., pk_live_...)"
        )
    if app.config[PREFIX + "STRIPE_API_BASE"] is not None:
        problems.append(
            f"{PREFIX}STRIPE_API_BASE is for a local fake of Stripe in tests: remove it"
        )
    if app.config["SESSION_COOKIE_SECURE"] is not True:
        problems.append(
            "SESSION_COOKIE_SECURE must be True in production: the portal's session lives in "
            "the app's session cookie, which must travel over https only"
        )
    return problems


def _text(key: str | bytes) -> str:
    return key.decode(errors="replace") if isinstance(key, bytes) else str(key)


def _importable(module: str) -> bool:
    # As the limits library loads its storage's client: by importing it.
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def config_value(name: str, app: Flask | None = None) -> Any:
    """Return the setting ``CUSTOMER_PORTAL_<name>`` of ``app`` (default: the current app)."""
    if name not in DEFAULTS:
        raise KeyError(f"{PREFIX}{name} is not a flask-customer-portal setting")
    return (app or current_app).config[PREFIX + name]


_REASON_CODE = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")


def _check_cancellation_reasons(setting: dict[str, Any]) -> None:
    name = f"{PREFIX}CANCELLATION_REASONS"
    for key, reasons in setting.items():
        if not isinstance(key, str) or not isinstance(reasons, (list, tuple)) or not reasons:
            raise ConfigurationError(f"{name}[{key!r}] must be a non-empty list of (code, label)")
        codes = []
        for pair in reasons:
            if (
                not isinstance(pair, (list, tuple))
                or len(pair) != 2
                or not isinstance(pair[0], str)
                or not _REASON_CODE.fullmatch(pair[0])
                or pair[1] is None
                or (isinstance(pair[1], str) and not pair[1].strip())
            ):
                raise ConfigurationError(
                    f"{name}[{key!r}]: {pair!r} is not a (code, label) pair with a code of "
                    "1-40 lower-case letters, digits, '-' or '_', and a label"
                )
            codes.append(pair[0])
        if len(set(codes)) != len(codes):
            raise ConfigurationError(f"{name}[{key!r}] names a code twice")
