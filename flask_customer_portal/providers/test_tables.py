"""The test provider's own tables (``portal_test_provider_*``), and the records read from them.

They stand for the provider's side of the world: what its card pages saved and
what it charged. Keeping them in the database, not in a process's memory, lets
test mode work with many web processes, and lets ``flask portal reconcile``
from cron see the charges the web processes made. The provider reads and
writes them in transactions of its own, as an outside service would: a
rollback of the portal's never undoes a charge.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import CheckConstraint, Column, Connection, Integer, Row, String, Table, select

from ..db import Base, UTCDateTime, currency_check, one_of, utcnow
from .base import SavedCard

#: What a test card does to every charge.
OUTCOMES = ("succeed", "declined", "insufficient_funds", "expired", "authenticate")
#: The statuses of a test charge.
CHARGE_STATUSES = ("succeeded", "failed", "requires_action")

cards = Table(
    "portal_test_provider_cards",
    Base.metadata,
    Column("token", String(40), primary_key=True),
    Column("customer_ref", String(40), nullable=False, index=True),
    Column("brand", String(20), nullable=False),
    Column("last4", String(4), nullable=False),
    Column("exp_month", Integer, nullable=False),
    Column("exp_year", Integer, nullable=False),
    Column("outcome", String(20), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    CheckConstraint(one_of("outcome", OUTCOMES), name="outcome"),
)

setups = Table(
    "portal_test_provider_setups",
    Base.metadata,
    Column("setup_id", String(40), primary_key=True),
    Column("customer_ref", String(40), nullable=False),
    Column("email", String(254), nullable=False),
    Column("return_url", String(2000), nullable=False),
    # Set once, when the card page saves a card; a setup saves one card at most.
    Column("saved_token", String(40)),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
)

charges = Table(
    "portal_test_provider_charges",
    Base.metadata,
    # One charge per idempotency key, whatever its outcome.
    Column("idempotency_key", String(255), primary_key=True),
    Column("charge_id", String(40), nullable=False, unique=True),
    Column("customer_ref", String(40), nullable=False),
    Column("token", String(40), nullable=False),
    Column("amount", Integer, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("description", String(500), nullable=False),
    Column("return_url", String(2000), nullable=False),
    Column("status", String(15), nullable=False),
    Column("failure_reason", String(500)),
    Column("created_at", UTCDateTime(), nullable=False),
    CheckConstraint(one_of("status", CHARGE_STATUSES), name="status"),
    CheckConstraint("amount > 0", name="amount"),
    currency_check(),
)


@dataclass(frozen=True)
class CardSetup:
    """A card page opened for one customer; ``card`` is set once a card is saved."""

    setup_id: str
    customer_ref: str
    email: str
    return_url: str
    expires_at: datetime
    card: SavedCard | None = None


@dataclass(frozen=True)
class TestCharge:
    """A charge the test provider made, keyed by its idempotency key in ``charges``."""

    __test__ = False  # not a pytest test class

    charge_id: str
    customer_ref: str
    token: str
    amount: int
    currency: str
    description: str
    return_url: str
    status: Literal["succeeded", "failed", "requires_action"]
    failure_reason: str | None = None


def open_setup(setup_id: str) -> Any:
    """Select the card page ``setup_id`` if it has not expired, with the card saved on it."""
    return (
        select(
            setups, cards.c.token, cards.c.brand, cards.c.last4, cards.c.exp_month, cards.c.exp_year
        )
        .outerjoin(cards, cards.c.token == setups.c.saved_token)
        .where(setups.c.setup_id == setup_id, setups.c.expires_at > utcnow())
    )


def saved_card(row: Row[Any]) -> SavedCard:
    """Return what the portal keeps of a card row: no number, never."""
    return SavedCard(row.token, row.brand, row.last4, row.exp_month, row.exp_year)


def find_charge(connection: Connection, idempotency_key: str) -> Row[Any] | None:
    """Return the charge row made with this key, or ``None``."""
    return connection.execute(
        select(charges).where(charges.c.idempotency_key == idempotency_key)
    ).first()


def charge_record(row: Row[Any]) -> TestCharge:
    """Return a charge row as the immutable record the provider hands out."""
    return TestCharge(
        row.charge_id,
        row.customer_ref,
        row.token,
        row.amount,
        row.currency,
        row.description,
        row.return_url,
        row.status,
        row.failure_reason,
    )
