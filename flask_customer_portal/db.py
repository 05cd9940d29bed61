"""The declarative base of the portal's tables, their column types, and the session.

The portal's models live on a metadata of their own, so the host's
``db.create_all()`` never touches them and ours never touch the host's. They are
used through the host's Flask-SQLAlchemy session when the host passes its ``db``
(our tables have no bind key, so they go to the host's default engine), or
through a session of our own on the embedded database otherwise.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from flask import current_app
from sqlalchemy import DateTime, MetaData
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Session
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_N_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Base class of every portal model."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC timestamp on every database.

    Naive datetimes are refused when written: a timestamp without a zone is a bug
    waiting for a daylight-saving change. SQLite stores the UTC wall time; every
    value read back carries ``tzinfo=UTC``.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: give an aware one (UTC)")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    """Return the current time, aware, in UTC."""
    return datetime.now(UTC)


_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


def new_public_id(prefix: str) -> str:
    """Return a random identifier for URLs and APIs, such as ``cus_k3x9...`` (103 bits)."""
    return prefix + "_" + "".join(secrets.choice(_ALPHABET) for _ in range(20))


def db_session() -> Session:
    """Return the session the portal uses in the current app context."""
    session: Any = current_app.extensions["customer_portal"].session
    return session


@contextmanager
def unit_of_work() -> Iterator[Session]:
    """Yield the session; commit if the block succeeds, roll back everything if it fails.

    The data API runs each call in one of these, so a call either lands whole
    or leaves nothing behind.
    """
    session = db_session()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
