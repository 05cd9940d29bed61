"""The health check for load balancers: can the portal serve, or should traffic go elsewhere?

No sign-in, no rate limit, never cached. The answer names what fails, never
why: versions and error text go to the log, not to whoever asks.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, Response, current_app, jsonify
from flask_limiter import Limiter
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from ..config import config_value
from ..models import Business
from ..proxies import portal


def register(blueprint: Blueprint, limiter: Limiter) -> None:
    """Add ``/health`` to ``blueprint``, exempt from every rate limit."""
    blueprint.add_url_rule("/health", "health", limiter.exempt(health))


def health() -> Response:
    """200 ``{"status": "ok"}``, or 503 ``{"status": "unavailable", "failing": [...]}``."""
    checks: dict[str, Callable[[], bool]] = {
        "database": _database_answers,
        "rate_limit_storage": _rate_limit_storage_answers,
    }
    failing = [name for name, answers in checks.items() if not answers()]
    response = jsonify(
        {"status": "unavailable", "failing": failing} if failing else {"status": "ok"}
    )
    response.status_code = 503 if failing else 200
    response.headers["Cache-Control"] = "no-store"
    return response


def _database_answers() -> bool:
    # A portal table, not "SELECT 1": SQLite answers that even for a file that is gone.
    try:
        with portal.engine.connect() as connection:
            connection.execute(select(Business.id).limit(1))
    except SQLAlchemyError:
        current_app.logger.exception("health check: the portal's database does not answer")
        return False
    return True


def _rate_limit_storage_answers() -> bool:
    limiter = portal.limiter
    if not limiter.enabled or config_value("RATELIMIT_STORAGE_URI").startswith("memory://"):
        return True
    if limiter.storage.check():
        return True
    current_app.logger.error("health check: the rate-limit storage does not answer")
    return False
