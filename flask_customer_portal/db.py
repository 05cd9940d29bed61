"""The foundation of the portal's tables: their declarative base and column types.

The portal's models live on a metadata of their own, so the host's
``db.create_all()`` never touches them and ours never touch the host's. They are
used through the host's Flask-SQLAlchemy session when the host passes its ``db``
(our tables have no bind key, so they go to the host's default engine), or
through a session of our own on the embedded database otherwise; either way
the rest of the package reaches it through :mod:`.proxies`.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, DateTime, MetaData, String, UniqueConstraint, text
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
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


# -- Column helpers of the models ------------------------------------------------------


#: A business has two separate worlds: test and live.
MODES = ("test", "live")
INTERVALS = ("day", "week", "month", "year")


def one_of(column: str, values: tuple[str, ...]) -> str:
    """Return the SQL of a check that ``column`` holds one of ``values``."""
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def currency_check(column: str = "currency") -> CheckConstraint:
    """Return the check that ``column`` holds an upper-case three-letter currency code."""
    return CheckConstraint(f"length({column}) = 3 AND upper({column}) = {column}", name=column)


def public_id_column(prefix: str) -> Mapped[str]:
    """Return a unique random public id column, such as ``cus_k3x9...``."""
    return mapped_column(String(40), unique=True, default=lambda: new_public_id(prefix))


def created_at_column() -> Mapped[datetime]:
    """Return a creation time column, set when the row is added."""
    return mapped_column(UTCDateTime(), default=utcnow)


def updated_at_column() -> Mapped[datetime]:
    """Return a modification time column, set on every ORM update."""
    return mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


def external_id_column() -> Mapped[str | None]:
    """Return the column of the id a record has in the merchant's system or processor."""
    return mapped_column(String(255))


def metadata_column() -> Mapped[dict[str, Any]]:
    """Return the column of the merchant's own key-value pairs (``metadata`` in SQL)."""
    return mapped_column("metadata", JSON, default=dict, server_default=text("'{}'"))


def scope_constraints() -> tuple[Any, ...]:
    """Return the checks of a record that belongs to a business in one mode.

    The record's ``external_id`` is unique in that scope (records without one
    never clash).
    """
    return (
        CheckConstraint(one_of("mode", MODES), name="mode"),
        UniqueConstraint("business_id", "mode", "external_id"),
    )
