"""The benchmark's data: one business, many customers, and one measured customer.

Built with bulk inserts (SQLAlchemy Core ``insert()`` executed on batches of rows
on SQLite, ``COPY`` on PostgreSQL), never the data API call by call, on a schema
made by the shipped migrations. The rows come from a seeded random generator,
so the same scale gives the same data on both databases.

The measured customer, ``bench@example.com``, holds ``Scale.measured`` paid
invoices, each paid by one payment: her billing history (invoices and payments,
25 entries a page) is twice that long. At the default scale she has 5,200
invoices, 10,400 entries, 416 pages: page 400 exists and is not the last.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

#: Bump when the generated data changes: cached databases of older versions are not reused.
SEED_VERSION = 1
#: Entries on a page of the billing history (the portal's default).
PER_PAGE = 25
BUSINESS_ID = "acme"
MODE = "test"
MEASURED_EMAIL = "bench@example.com"
#: The invoices span nine years before this moment, whatever their number.
TIMELINE_END = datetime(2025, 1, 1, tzinfo=UTC)
TIMELINE = timedelta(days=9 * 365)
PERIOD_START = datetime(2025, 1, 1, tzinfo=UTC)
PERIOD_END = datetime(2025, 2, 1, tzinfo=UTC)
PLANS = (("Starter", 900), ("Pro", 2900), ("Team", 9900))
PLAN_WEIGHTS = (5, 4, 1)
#: The measured customer's invoice lines (description, unit amount, quantity).
MEASURED_LINES = (
    ("Acme Cloud Pro", 2900, 1),
    ("Extra seats", 500, 3),
    ("Priority support", 1000, 1),
)
FIRST_NAMES = ("Ana", "Bruno", "Carla", "Diego", "Emma", "Felix", "Grace", "Hugo", "Inès", "João")
LAST_NAMES = ("Souza", "Müller", "García", "Smith", "Dubois", "Nguyen", "Rossi", "Kowalski")
LOCALES = ("en", "en", "en", "pt_BR", "es", "fr", "de", None)
BATCH = 20_000


@dataclass(frozen=True)
class Scale:
    """How much data: invoices in all, customers, and the measured customer's invoices."""

    invoices: int
    customers: int
    measured: int

    @classmethod
    def of(cls, invoices: int, deep_page: int) -> Scale:
        """The scale of ``invoices`` invoices: a tenth as many customers, and a measured
        customer whose history reaches past ``deep_page`` (a quarter of all invoices at most).
        """
        if invoices < 20:
            raise ValueError("the scale is at least 20 invoices")
        wanted = math.ceil(deep_page * PER_PAGE / 2) + 8 * PER_PAGE
        return cls(invoices, max(invoices // 10, 2), min(wanted, invoices // 4))

    @property
    def history_entries(self) -> int:
        """The measured customer's billing history: an invoice and a payment each."""
        return 2 * self.measured

    @property
    def pages(self) -> int:
        return math.ceil(self.history_entries / PER_PAGE)

    def has_page(self, page: int) -> bool:
        return page <= self.pages

    @property
    def key(self) -> str:
        return f"{self.invoices}i_{self.customers}c_{self.measured}m"

    def describe(self) -> str:
        return (
            f"{self.invoices:,} invoices, {self.customers:,} customers; {MEASURED_EMAIL} has "
            f"{self.measured:,} paid invoices ({self.history_entries:,} history entries, "
            f"{self.pages:,} pages of {PER_PAGE})"
        )


# -- Rows ---------------------------------------------------------------------------------

Row = dict[str, Any]


@dataclass
class Dataset:
    """Every table's rows, generated lazily in insertion order (parents first)."""

    scale: Scale
    business_pk: int
    business_snapshot: dict[str, Any]

    def __post_init__(self) -> None:
        self.rng = random.Random(20250101)
        self.customer_snapshots: list[dict[str, Any]] = [{}]
        self.prices = [0]

    def tables(self) -> list[tuple[str, Callable[[], Iterator[Row]]]]:
        return [
            ("portal_customers", self.customers),
            ("portal_payment_methods", self.payment_methods),
            ("portal_subscriptions", self.subscriptions),
            ("portal_invoices", self.invoices),
            ("portal_invoice_lines", self.invoice_lines),
            ("portal_payments", self.payments),
            ("portal_license_keys", self.license_keys),
        ]

    @property
    def scope(self) -> Row:
        # The business and mode every record belongs to.
        return {"business_id": self.business_pk, "mode": MODE}

    def public_id(self, prefix: str) -> str:
        # 80 random bits in hex: the portal's alphabet, and as scattered in the index.
        return f"{prefix}_{self.rng.getrandbits(80):020x}"

    def customers(self) -> Iterator[Row]:
        joined = TIMELINE_END - TIMELINE - timedelta(days=30)
        for pk in range(1, self.scale.customers + 1):
            locale: str | None
            if pk == 1:
                email, name, locale = MEASURED_EMAIL, "Bench Customer", "en"
            else:
                email = f"customer{pk:07d}@example.com"
                name = f"{self.rng.choice(FIRST_NAMES)} {self.rng.choice(LAST_NAMES)}"
                locale = self.rng.choice(LOCALES)
            public_id = self.public_id("cus")
            self.customer_snapshots.append(
                {"public_id": public_id, "name": name, "email": email, "phone": None}
            )
            yield {
                "id": pk,
                "public_id": public_id,
                "business_id": self.business_pk,
                "mode": MODE,
                "email": email,
                "name": name,
                "phone": None,
                "locale": locale,
                "created_at": joined,
                "updated_at": joined,
            }

    def payment_methods(self) -> Iterator[Row]:
        created = TIMELINE_END - TIMELINE - timedelta(days=30)
        for pk in range(1, self.scale.customers + 1):
            yield {
                "id": pk,
                "public_id": self.public_id("pm"),
                "customer_id": pk,
                "provider_token": f"tok_{self.rng.getrandbits(64):016x}",
                "brand": self.rng.choice(("visa", "mastercard", "amex")),
                "last4": f"{self.rng.randrange(10_000):04d}",
                "exp_month": self.rng.randint(1, 12),
                "exp_year": self.rng.randint(2026, 2030),
                "is_default": True,
                "created_at": created,
            }

    def subscriptions(self) -> Iterator[Row]:
        """Two for the measured customer (ids 1: active Pro, 2: cancelled); one for the others
        (id = customer + 1)."""
        created = TIMELINE_END - TIMELINE - timedelta(days=30)
        yield self._subscription(1, 1, "Pro", 2900, "active", created)
        yield self._subscription(2, 1, "Starter", 900, "cancelled", created)
        self.prices.append(sum(unit * quantity for _, unit, quantity in MEASURED_LINES))
        for customer in range(2, self.scale.customers + 1):
            plan, price = self.rng.choices(PLANS, PLAN_WEIGHTS)[0]
            status = self.rng.choices(("active", "on_hold", "cancelled", "pending"), (85, 4, 9, 2))[
                0
            ]
            self.prices.append(price)
            yield self._subscription(customer + 1, customer, plan, price, status, created)

    def _subscription(
        self, pk: int, customer: int, plan: str, price: int, status: str, created: datetime
    ) -> Row:
        ended = status == "cancelled"
        return {
            "id": pk,
            "public_id": self.public_id("sub"),
            "customer_id": customer,
            **self.scope,
            "product": "Acme Cloud",
            "plan": plan,
            "price_amount": price,
            "currency": "USD",
            "interval": "month",
            "interval_count": 1,
            "quantity": 1,
            "status": status,
            "current_period_start": PERIOD_START - timedelta(days=400 if ended else 0),
            "current_period_end": PERIOD_END - timedelta(days=400 if ended else 0),
            "next_billing_at": None if ended else PERIOD_END,
            "cancel_at_period_end": False,
            "cancelled_at": PERIOD_START - timedelta(days=400) if ended else None,
            "ended_at": PERIOD_END - timedelta(days=400) if ended else None,
            "created_at": created,
            "updated_at": created,
            "payment_method_id": customer,
        }

    def _invoice_plan(self) -> Iterator[tuple[int, int, str, bool]]:
        """(invoice id, customer, status, failed attempt first?) of every invoice, oldest first."""
        total, measured = self.scale.invoices, self.scale.measured
        stride = total // measured
        plan = random.Random(7)
        given = 0
        for index in range(total):
            pk = index + 1
            if index % stride == stride - 1 and given < measured:
                given += 1
                yield pk, 1, "paid", False
                continue
            customer = plan.randint(2, self.scale.customers)
            roll = plan.random()
            status = "paid" if roll < 0.94 else "open" if roll < 0.97 else "void"
            yield pk, customer, status, status == "paid" and plan.random() < 0.03

    def _issued_at(self, pk: int) -> datetime:
        step = TIMELINE / self.scale.invoices
        return TIMELINE_END - TIMELINE + step * (pk - 1)

    def invoices(self) -> Iterator[Row]:
        for pk, customer, status, _ in self._invoice_plan():
            issued = self._issued_at(pk)
            total = self.prices[customer]
            yield {
                "id": pk,
                "public_id": self.public_id("in"),
                **self.scope,
                "customer_id": customer,
                "subscription_id": 1 if customer == 1 else customer + 1,
                "number": f"ACME-TEST-{pk:06d}",
                "status": status,
                "currency": "USD",
                "subtotal": total,
                "tax": 0,
                "total": total,
                "issued_at": issued,
                "due_at": issued + timedelta(days=14),
                "paid_at": issued + timedelta(hours=1) if status == "paid" else None,
                "business_snapshot": self.business_snapshot,
                "customer_snapshot": self.customer_snapshots[customer],
                "created_at": issued,
            }

    def invoice_lines(self) -> Iterator[Row]:
        pk = 0
        for invoice, customer, _, _ in self._invoice_plan():
            lines: tuple[tuple[str, int, int], ...]
            if customer == 1:
                lines = MEASURED_LINES
            else:
                price = self.prices[customer]
                lines = ((f"Acme Cloud {self._plan_name(price)}", price, 1),)
            for position, (description, unit, quantity) in enumerate(lines, 1):
                pk += 1
                yield {
                    "id": pk,
                    "invoice_id": invoice,
                    "position": position,
                    "description": description,
                    "quantity": quantity,
                    "unit_amount": unit,
                    "amount": unit * quantity,
                }

    @staticmethod
    def _plan_name(price: int) -> str:
        return next(name for name, amount in PLANS if amount == price)

    def payments(self) -> Iterator[Row]:
        pk = 0
        for invoice, customer, status, failed_first in self._invoice_plan():
            if status != "paid":
                continue
            issued = self._issued_at(invoice)
            attempts = [("failed", issued + timedelta(minutes=30))] if failed_first else []
            attempts.append(("succeeded", issued + timedelta(hours=1)))
            for outcome, at in attempts:
                pk += 1
                yield {
                    "id": pk,
                    "public_id": self.public_id("py"),
                    "customer_id": customer,
                    **self.scope,
                    "invoice_id": invoice,
                    "subscription_id": 1 if customer == 1 else customer + 1,
                    "payment_method_id": customer,
                    "amount": self.prices[customer],
                    "currency": "USD",
                    "status": outcome,
                    "provider_reference": f"ch_{self.rng.getrandbits(64):016x}",
                    "idempotency_key": None,
                    "failure_reason": "Your card was declined." if outcome == "failed" else None,
                    "action_url": None,
                    "created_at": at,
                    "updated_at": at,
                }

    def license_keys(self) -> Iterator[Row]:
        """Three keys for the measured customer, one for a tenth of the others."""
        owners = [1, 1, 1, *range(2, self.scale.customers + 1, 10)]
        created = TIMELINE_END - TIMELINE
        for pk, customer in enumerate(owners, 1):
            yield {
                "id": pk,
                "public_id": self.public_id("lk"),
                "customer_id": customer,
                "subscription_id": 1 if customer == 1 else customer + 1,
                "key": f"ACME-{self.rng.getrandbits(64):016X}",
                "product": "Acme CLI",
                "status": "active",
                "expires_at": None,
                "activation_limit": 3,
                "activations": 1,
                "created_at": created,
            }


def batches(rows: Iterable[Row], size: int = BATCH) -> Iterator[list[Row]]:
    batch: list[Row] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


# -- Writing ------------------------------------------------------------------------------


def business_snapshot(url: str) -> tuple[int, dict[str, Any]]:
    """Return the seeded business's primary key and its snapshot (as invoices freeze it)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            row = connection.execute(
                sa.text(
                    "SELECT id, public_id, name, support_email, address, tax_id "
                    "FROM portal_businesses WHERE public_id = :id"
                ),
                {"id": BUSINESS_ID},
            ).one()
    finally:
        engine.dispose()
    pk, *details = row
    keys = ("public_id", "name", "support_email", "address", "tax_id")
    return int(pk), dict(zip(keys, details, strict=True))


def write_sqlite(url: str, dataset: Dataset, progress: Callable[[str], None]) -> None:
    """Insert every row with Core ``insert()`` on batches, in one transaction."""
    from flask_customer_portal.db import Base

    engine = sa.create_engine(url)

    @sa.event.listens_for(engine, "connect")
    def fast(dbapi_connection: Any, record: Any) -> None:
        cursor = dbapi_connection.cursor()
        # A file being built, renamed into the cache only once complete: no journal.
        cursor.execute("PRAGMA journal_mode = OFF")
        cursor.execute("PRAGMA synchronous = OFF")
        cursor.execute("PRAGMA cache_size = -1000000")
        cursor.close()

    try:
        with engine.begin() as connection:
            for name, rows in dataset.tables():
                table = Base.metadata.tables[name]
                count = 0
                for batch in batches(rows()):
                    connection.execute(table.insert(), batch)
                    count += len(batch)
                progress(f"{name}: {count:,} rows")
            # The business has numbered as many test invoices as there are.
            connection.execute(
                sa.text("UPDATE portal_businesses SET invoice_counter_test = :n WHERE id = :id"),
                {"n": dataset.scale.invoices, "id": dataset.business_pk},
            )
    finally:
        engine.dispose()


def write_postgresql(url: str, dataset: Dataset, progress: Callable[[str], None]) -> None:
    """COPY every row in, set the sequences past them, then VACUUM ANALYZE."""
    import psycopg

    conninfo = sa.make_url(url).set(drivername="postgresql").render_as_string(False)
    with psycopg.connect(conninfo) as connection:
        for name, rows in dataset.tables():
            count = 0
            with connection.cursor() as cursor:
                for batch in batches(rows()):
                    columns = list(batch[0])
                    quoted = ", ".join(f'"{column}"' for column in columns)
                    with cursor.copy(f"COPY {name} ({quoted}) FROM STDIN") as copy:
                        for row in batch:
                            copy.write_row([_copy_value(row[column]) for column in columns])
                    count += len(batch)
                cursor.execute(
                    f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), max(id)) FROM {name}"
                )
            progress(f"{name}: {count:,} rows")
        connection.execute(
            "UPDATE portal_businesses SET invoice_counter_test = %s WHERE id = %s",
            (dataset.scale.invoices, dataset.business_pk),
        )
    with psycopg.connect(conninfo, autocommit=True) as connection:
        # What autovacuum would have done on a live database, done now rather than mid-run.
        connection.execute("VACUUM ANALYZE")
    progress("VACUUM ANALYZE done")


def _copy_value(value: Any) -> Any:
    return json.dumps(value) if isinstance(value, dict) else value


def file_size(path: Path) -> str:
    return f"{path.stat().st_size / 2**20:,.0f} MB"
