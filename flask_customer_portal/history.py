"""The customer's billing history: invoices, payments and refunds read as one list.

The read model of the billing pages. One statement per page, however long
the history: the three tables are merged with ``UNION ALL``, ordered by (time,
kind, public id), and a page starts after a cursor (keyset pagination), never
at an offset.
"""

from __future__ import annotations

import base64
import json
import operator
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    BindParameter,
    Row,
    Select,
    String,
    and_,
    bindparam,
    cast,
    literal,
    literal_column,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.orm import selectinload

from .errors import ValidationError
from .i18n import bound_gettext
from .models import IN_FLIGHT, Customer, Invoice, Payment, Refund
from .proxies import portal

#: The status filters of the billing history: which statuses of which kind of
#: record each one shows. Every status of every record is under exactly one.
HISTORY_FILTERS: dict[str, dict[str, tuple[str, ...]]] = {
    "paid": {"invoice": ("paid",), "payment": ("succeeded",)},
    "open": {"invoice": ("open", "draft"), "payment": IN_FLIGHT},
    "failed": {"payment": ("failed",), "refund": ("failed",)},
    "refunded": {"refund": ("pending", "succeeded")},
    "void": {"invoice": ("void", "uncollectible")},
}


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One row of a customer's billing history: an invoice, a payment (or failed attempt), a refund.

    ``amount`` is positive for every kind (a refund gives it back);
    ``invoice_public_id`` is the invoice itself, the invoice a payment paid, or
    the invoice of the refunded payment; ``note`` is a failure or refund reason.
    """

    kind: str
    public_id: str
    at: datetime
    description: str
    amount: int
    currency: str
    status: str
    invoice_public_id: str | None
    note: str | None

    @property
    def cursor(self) -> str:
        """The opaque position of this entry, for :func:`billing_history`'s ``after``/``before``."""
        position = [self.at.isoformat(), self.kind, self.public_id]
        return base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """A page of the billing history, newest first, with the cursors of its neighbours."""

    entries: list[HistoryEntry]
    #: Pass as ``after`` for the next (older) page; ``None`` on the last page.
    older: str | None
    #: Pass as ``before`` for the previous (newer) page; ``None`` on the first page.
    newer: str | None


def billing_history(
    customer: Customer,
    *,
    status: str | None = None,
    after: str | None = None,
    before: str | None = None,
    limit: int = 25,
) -> HistoryPage:
    """Return a page of ``customer``'s invoices, payments and refunds, newest first.

    Descriptions are in the current locale (a page's).

    :param status: one of :data:`HISTORY_FILTERS`, or ``None`` for everything.
    :param after: the ``older`` cursor of the page before: the page that follows it.
    :param before: the ``newer`` cursor of a page: the page that precedes it.
    :raises ValidationError: an unknown ``status`` or a malformed cursor.
    """
    if status is not None and status not in HISTORY_FILTERS:
        raise ValidationError(
            "status",
            "invalid_choice",
            f"choose one of {', '.join(HISTORY_FILTERS)}",
            choices=tuple(HISTORY_FILTERS),
        )
    if after is not None and before is not None:
        raise ValidationError("before", "after_and_before", "give after or before, not both")
    if before is not None:
        rows = _history_rows(customer, status, _cursor("before", before), newer=True, limit=limit)
        if len(rows) > limit:
            entries = rows[:limit][::-1]
            return HistoryPage(entries, older=entries[-1].cursor, newer=entries[0].cursor)
        # Fewer than a page is newer than the cursor: that is the first page.
        after = None
    position = _cursor("after", after) if after is not None else None
    rows = _history_rows(customer, status, position, newer=False, limit=limit)
    entries = rows[:limit]
    return HistoryPage(
        entries,
        older=entries[-1].cursor if len(rows) > limit else None,
        newer=None if position is None else (entries[0].cursor if entries else after),
    )


def customer_invoice(customer: Customer, public_id: str) -> Invoice | None:
    """Return ``customer``'s invoice with this public id and its lines, or ``None`` (Z1)."""
    return portal.session.scalar(
        _CUSTOMER_INVOICE,
        {"customer_id": customer.id, "business_id": customer.business_id, "public_id": public_id},
    )


def invoice_payments(invoice: Invoice) -> list[Payment]:
    """Return the payments and failed attempts made on ``invoice``, oldest first, with refunds.

    ``invoice`` is one the caller found scoped to its customer, and its payments
    are that customer's: they are looked up by the invoice alone, so that every
    database reads them through the invoice's index. (With the customer too,
    SQLite, which keeps no statistics unless asked, would walk the customer's
    whole payment history by its history index instead.)
    """
    return list(portal.session.scalars(_INVOICE_PAYMENTS, {"invoice_id": invoice.id}))


# The invoice page's statements, built once: the ids are bound when they run.
_CUSTOMER_INVOICE = (
    select(Invoice)
    .where(
        Invoice.customer_id == bindparam("customer_id"),
        Invoice.business_id == bindparam("business_id"),
        Invoice.public_id == bindparam("public_id"),
    )
    .options(selectinload(Invoice.lines))
)
_INVOICE_PAYMENTS = (
    select(Payment)
    .where(Payment.invoice_id == bindparam("invoice_id"))
    .options(selectinload(Payment.refunds))
    .order_by(Payment.created_at, Payment.id)
)


_Position = tuple[datetime, str, str]


def _cursor(field: str, value: str) -> _Position:
    message = "is not a position in this history; start again from the first page"
    if len(value) > 200:  # a real cursor is about 100 characters
        raise ValidationError(field, "invalid_cursor", message)
    try:
        at, kind, public_id = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
        moment = datetime.fromisoformat(at)
    except (ValueError, TypeError):
        raise ValidationError(field, "invalid_cursor", message) from None
    known = isinstance(kind, str) and kind in _HISTORY_KINDS and isinstance(public_id, str)
    if not known or moment.tzinfo is None:
        raise ValidationError(field, "invalid_cursor", message)
    return moment, kind, public_id


def _history_rows(
    customer: Customer, status: str | None, position: _Position | None, *, newer: bool, limit: int
) -> list[HistoryEntry]:
    values: dict[str, Any] = {"customer_id": customer.id, "limit": limit + 1}
    if position is not None:
        values.update(zip(("at", "kind", "public_id"), position, strict=True))
    statement = _history_statement(status, position is not None, newer)
    rows = portal.session.execute(statement, values)
    gettext_ = bound_gettext()
    return [_entry(row, gettext_) for row in rows]


@lru_cache(maxsize=32)
def _history_statement(status: str | None, positioned: bool, newer: bool) -> Select[Any]:
    # Built once per filter and direction: the customer, the cursor and the page
    # size are bound when it runs, so a page costs the query and nothing else.
    # Each kind of record gives its own first ``limit`` rows beyond the cursor,
    # read in order from its (customer, time) index; only those few are merged
    # and sorted, however long the history.
    customer_id: BindParameter[int] = bindparam("customer_id")
    spot: _Spot = (bindparam("at"), bindparam("kind"), bindparam("public_id"))
    branches = []
    for kind, rows_of in _HISTORY_KINDS.items():
        statuses = HISTORY_FILTERS[status].get(kind) if status is not None else None
        if status is not None and statuses is None:
            continue  # the filter shows nothing of this kind
        query = rows_of(customer_id)
        at, public_id = query.selected_columns.at, query.selected_columns.public_id
        if statuses is not None:
            query = query.where(query.selected_columns.status.in_(statuses))
        if positioned:
            query = query.where(_beyond(kind, at, public_id, spot, newer=newer))
        order = (at, public_id) if newer else (at.desc(), public_id.desc())
        branches.append(select(query.order_by(*order).limit(bindparam("limit")).subquery()))
    history = union_all(*branches).subquery()
    columns = (history.c.at, history.c.kind, history.c.public_id)
    order_by = columns if newer else tuple(column.desc() for column in columns)
    return select(history).order_by(*order_by).limit(bindparam("limit"))


_Spot = tuple[BindParameter[Any], BindParameter[Any], BindParameter[Any]]


def _beyond(kind: str, at: Any, public_id: Any, spot: _Spot, *, newer: bool) -> Any:
    # (at, kind, public_id) beyond the cursor, compared as a tuple and spelled
    # out (row values are not everywhere), with this branch's kind a constant.
    # The first term bounds the range read from the index; the rest filters it.
    beyond = operator.gt if newer else operator.lt
    spot_at, spot_kind, spot_id = spot
    return and_(
        at >= spot_at if newer else at <= spot_at,
        or_(
            beyond(at, spot_at),
            beyond(literal(kind), spot_kind),
            and_(literal(kind) == spot_kind, beyond(public_id, spot_id)),
        ),
    )


def _invoice_rows(customer_id: Any) -> Select[*tuple[Any, ...]]:
    return select(
        literal_column("'invoice'", String).label("kind"),
        Invoice.public_id.label("public_id"),
        Invoice.issued_at.label("at"),
        Invoice.status.label("status"),
        Invoice.total.label("amount"),
        Invoice.currency.label("currency"),
        Invoice.public_id.label("invoice_public_id"),
        Invoice.number.label("invoice_number"),
        cast(null(), String).label("note"),
    ).where(Invoice.customer_id == customer_id)


def _payment_rows(customer_id: Any) -> Select[*tuple[Any, ...]]:
    return (
        select(
            literal_column("'payment'", String).label("kind"),
            Payment.public_id.label("public_id"),
            Payment.created_at.label("at"),
            Payment.status.label("status"),
            Payment.amount.label("amount"),
            Payment.currency.label("currency"),
            Invoice.public_id.label("invoice_public_id"),
            Invoice.number.label("invoice_number"),
            Payment.failure_reason.label("note"),
        )
        .outerjoin(Invoice, Payment.invoice_id == Invoice.id)
        .where(Payment.customer_id == customer_id)
    )


def _refund_rows(customer_id: Any) -> Select[*tuple[Any, ...]]:
    return (
        select(
            literal_column("'refund'", String).label("kind"),
            Refund.public_id.label("public_id"),
            Refund.created_at.label("at"),
            Refund.status.label("status"),
            Refund.amount.label("amount"),
            Refund.currency.label("currency"),
            Invoice.public_id.label("invoice_public_id"),
            Invoice.number.label("invoice_number"),
            Refund.reason.label("note"),
        )
        .join(Payment, Refund.payment_id == Payment.id)
        .outerjoin(Invoice, Payment.invoice_id == Invoice.id)
        .where(Refund.customer_id == customer_id)
    )


_HISTORY_KINDS: dict[str, Callable[[Any], Select[*tuple[Any, ...]]]] = {
    "invoice": _invoice_rows,
    "payment": _payment_rows,
    "refund": _refund_rows,
}


def _entry(row: Row[Any], gettext: Callable[..., str]) -> HistoryEntry:
    number = row.invoice_number
    if row.kind == "invoice":
        description = gettext("Invoice %(number)s", number=number)
    elif row.kind == "payment":
        description = (
            gettext("Payment for invoice %(number)s", number=number)
            if number
            else gettext("Payment")
        )
    else:
        description = (
            gettext("Refund for invoice %(number)s", number=number) if number else gettext("Refund")
        )
    return HistoryEntry(
        kind=row.kind,
        public_id=row.public_id,
        at=row.at,
        description=description,
        amount=row.amount,
        currency=row.currency,
        status=row.status,
        invoice_public_id=row.invoice_public_id,
        note=row.note,
    )
