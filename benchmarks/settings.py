"""The settings both servers run with, and the paths of the harness."""

from __future__ import annotations

from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
#: Seeded databases (and the PostgreSQL cluster that keeps them), reused between runs.
DATA = BENCHMARKS / ".data"
#: Results of each run (JSON), profiles, server logs.
RESULTS = BENCHMARKS / ".results"
GUNICORN_CONF = ROOT / "deploy" / "gunicorn.conf.py"

SECRET_KEY = "benchmark-secret-key-never-used-anywhere-else-0123456789"
STAFF_PASSWORD = "benchmark-staff-password"
#: Rate limits so high that no run reaches them: the limiter still counts every request.
RAISED_LIMIT = "1000000000 per minute"


def store_settings(
    database_url: str, external_url: str, mail_port: int | None = None
) -> dict[str, Any]:
    """The example store's settings: debug mode, as tests/test_multiprocess.py runs it.

    Outside debug and testing the portal refuses to start without a live payment
    provider, which the example store does not have. Debug mode changes nothing
    else on a request under gunicorn (no debugger there) but reloading templates
    from disk, which ``TEMPLATES_AUTO_RELOAD = False`` turns off as in production.

    :param mail_port: the local mail server's port (``smtp.py``): the mail thread
        sends there, as in production. Without one, mail is queued and never sent.
    """
    if mail_port is None:
        mail = {"CUSTOMER_PORTAL_MAIL_DISPATCH": "manual"}
    else:
        mail = {"MAIL_SERVER": "127.0.0.1", "MAIL_PORT": mail_port}
    return {
        **mail,
        "DEBUG": True,
        "TEMPLATES_AUTO_RELOAD": False,
        "SECRET_KEY": SECRET_KEY,
        "STAFF_PASSWORD": STAFF_PASSWORD,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "CUSTOMER_PORTAL_EXTERNAL_URL": external_url,
        "CUSTOMER_PORTAL_LOGIN_RATE_LIMIT_IP": RAISED_LIMIT,
        "CUSTOMER_PORTAL_LOGIN_RATE_LIMIT_EMAIL": RAISED_LIMIT,
        "CUSTOMER_PORTAL_LOGIN_RATE_LIMIT_EMAIL_ALL_IPS": RAISED_LIMIT,
        "CUSTOMER_PORTAL_REDEEM_RATE_LIMIT": RAISED_LIMIT,
        "CUSTOMER_PORTAL_API_RATE_LIMIT": RAISED_LIMIT,
    }


def baseline_settings(database_url: str) -> dict[str, Any]:
    """The baseline app's settings: the same mode and template caching as the store."""
    return {
        "DEBUG": True,
        "TEMPLATES_AUTO_RELOAD": False,
        "SECRET_KEY": SECRET_KEY,
        "SQLALCHEMY_DATABASE_URI": database_url,
    }


def environment(settings: dict[str, Any]) -> dict[str, str]:
    """``FLASK_*`` variables for ``app.config.from_prefixed_env()`` (as the deployment does)."""
    return {
        f"FLASK_{key}": str(value).lower() if isinstance(value, bool) else str(value)
        for key, value in settings.items()
    }
