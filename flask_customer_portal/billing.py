"""Invoices, payments, refunds and dues: the billing records the portal shows."""

from __future__ import annotations

import base64
import json
import operator
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Row,
    Select,
    String,
    and_,
    cast,
    func,
    literal_column,
    null,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.orm import selectinload

from . import validation as v
from .db import db_session, unit_of_work, utcnow
from .errors import ValidationError
from .i18n import gettext
from .models import Business, Customer, Invoice, InvoiceLine, Payment, Refund, Subscription
from .subscriptions import add_interval, transition


def issue_invoice(
    customer: Customer,
    lines: Iterable[Mapping[str, Any]],
    *,
    currency: str,
    tax: int = 0,
    subscription: Subscription | None = None,
    status: str = "open",
    issued_at: datetime | None = None,
    due_at: datetime | None = None,
) -> Invoice:
    """Issue an invoice to ``customer`` and commit it.

    The invoice takes the next number of its business (``ACME-000042``) and a
    frozen copy of the business's and customer's details, so a later change of
    address never rewrites an issued invoice. Pay it with :func:`record_payment`.

    :param lines: mappings with ``description``, ``unit_amount`` (minor units)
        and optionally ``quantity`` (default 1).
    :param tax: the tax on the whole invoice, in minor units.
    :param status: ``"open"`` (awaiting payment) or ``"draft"``.
    """
    items = invoice_lines(lines)
    currency = v.currency("currency", currency)
    tax = v.amount("tax", tax)
    status = v.choice("status", status, ("open", "draft"))
    issued = v.aware("issued_at", issued_at, required=False) or utcnow()
    due = v.aware("due_at", due_at, required=False)
    if subscription is not None:
        _check_owner("subscription", subscription.customer_id, customer)
        if subscription.currency != currency:
            raise ValidationError("currency", "differs from the subscription's currency")
    with unit_of_work() as session:
        invoice = new_invoice(
            customer,
            items,
            currency=currency,
            tax=tax,
            subscription=subscription,
            status=status,
            issued_at=issued,
            due_at=due,
        )
        session.add(invoice)
    return invoice


def void_invoice(invoice: Invoice) -> Invoice:
    """Void an open or draft invoice (it stays in the history, no longer due); commit."""
    with unit_of_work() as session:
        result = session.execute(
            update(Invoice)
            .where(Invoice.id == invoice.id, Invoice.status.in_(("open", "draft")))
            .values(status="void")
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise ValidationError("invoice", f"a {invoice.status} invoice cannot be voided")
    session.refresh(invoice)
    return invoice


def record_payment(
    customer: Customer,
    *,
    amount: int,
    currency: str,
    invoice: Invoice | None = None,
    status: str = "succeeded",
    provider_reference: str | None = None,
    idempotency_key: str | None = None,
    failure_reason: str | None = None,
    at: datetime | None = None,
) -> Payment:
    """Record a payment (or a failed attempt) the merchant's system made; commit.

    A succeeded payment that brings an open invoice's payments up to its total
    marks the invoice paid. Recording the same ``idempotency_key`` twice returns
    the first payment, so a retried webhook never records money twice.

    :param status: ``"succeeded"``, ``"failed"`` (give a ``failure_reason``) or ``"pending"``.
    :param at: when it happened (now by default).
    """
    fields = _payment_fields(
        customer,
        amount=amount,
        currency=currency,
        invoice=invoice,
        status=status,
        provider_reference=provider_reference,
        idempotency_key=idempotency_key,
        failure_reason=failure_reason,
    )
    when = v.aware("at", at, required=False) or utcnow()
    with unit_of_work() as session:
        if fields["idempotency_key"] is not None:
            existing = session.scalar(
                select(Payment).filter_by(idempotency_key=fields["idempotency_key"])
            )
            if existing is not None:
                return _same_payment(existing, fields)
        if invoice is not None and status == "succeeded":
            _apply_to_invoice(invoice, fields["amount"], when)
        payment = Payment(created_at=when, updated_at=when, **fields)
        session.add(payment)
    return payment


def record_refund(
    payment: Payment,
    *,
    amount: int | None = None,
    reason: str | None = None,
    provider_reference: str | None = None,
    idempotency_key: str | None = None,
    at: datetime | None = None,
) -> Refund:
    """Record a refund of a succeeded payment (all of it when ``amount`` is omitted); commit.

    The refunds of a payment never add up to more than the payment.
    """
    if payment.status != "succeeded":
        raise ValidationError("payment", f"a {payment.status} payment cannot be refunded")
    reason = v.text("reason", reason, max_length=500, required=False)
    provider_reference = v.text(
        "provider_reference", provider_reference, max_length=255, required=False
    )
    idempotency_key = v.text("idempotency_key", idempotency_key, max_length=255, required=False)
    when = v.aware("at", at, required=False) or utcnow()
    with unit_of_work() as session:
        if idempotency_key is not None:
            existing = session.scalar(select(Refund).filter_by(idempotency_key=idempotency_key))
            if existing is not None:
                if existing.payment_id != payment.id or amount not in (None, existing.amount):
                    raise ValidationError(
                        "idempotency_key", "was already used for a different refund"
                    )
                return existing
        # Lock the payment so that two refunds racing cannot both pass the check.
        session.execute(select(Payment.id).filter_by(id=payment.id).with_for_update())
        refunded = session.scalar(
            select(func.coalesce(func.sum(Refund.amount), 0)).where(
                Refund.payment_id == payment.id, Refund.status != "failed"
            )
        )
        left = payment.amount - int(refunded or 0)
        amount = left if amount is None else v.amount("amount", amount, positive=True)
        if amount > left or left == 0:
            raise ValidationError("amount", f"exceeds what is left to refund ({left})")
        refund = Refund(
            payment_id=payment.id,
            amount=amount,
            currency=payment.currency,
            status="succeeded",
            reason=reason,
            provider_reference=provider_reference,
            idempotency_key=idempotency_key,
            created_at=when,
        )
        session.add(refund)
    return refund


def record_failed_renewal(
    subscription: Subscription,
    *,
    reason: str,
    amount: int | None = None,
    provider_reference: str | None = None,
    idempotency_key: str | None = None,
    at: datetime | None = None,
) -> Invoice:
    """Record that a renewal payment failed: open an invoice for the dues, put the plan on hold.

    In one transaction: the subscription moves to the next period, an open
    invoice for that period (``amount``, default price × quantity) is issued, a
    failed payment with ``reason`` is recorded against it, and the subscription
    becomes ``on_hold`` (it may already be). Commits; returns the invoice.
    Recording the same ``idempotency_key`` again returns the first invoice.
    """
    reason = v.required_text("reason", reason, max_length=500)
    provider_reference = v.text(
        "provider_reference", provider_reference, max_length=255, required=False
    )
    idempotency_key = v.text("idempotency_key", idempotency_key, max_length=255, required=False)
    due = v.amount("amount", subscription.amount if amount is None else amount, positive=True)
    when = v.aware("at", at, required=False) or utcnow()
    customer = subscription.customer
    starts = subscription.current_period_end
    ends = add_interval(starts, subscription.interval, subscription.interval_count)
    with unit_of_work() as session:
        if idempotency_key is not None:
            seen = session.scalar(select(Payment).filter_by(idempotency_key=idempotency_key))
            if seen is not None:
                if seen.subscription_id != subscription.id or seen.invoice is None:
                    raise ValidationError("idempotency_key", "was already used for another payment")
                return seen.invoice
        transition(
            subscription,
            "on_hold",
            current_period_start=starts,
            current_period_end=ends,
            next_billing_at=None,
        )
        line = {
            "description": _period_description(subscription, starts, ends),
            "unit_amount": due,
        }
        invoice = new_invoice(
            customer,
            invoice_lines([line]),
            currency=subscription.currency,
            tax=0,
            subscription=subscription,
            status="open",
            issued_at=when,
            due_at=when,
        )
        session.add(invoice)
        session.flush()
        session.add(
            Payment(
                customer_id=customer.id,
                invoice_id=invoice.id,
                subscription_id=subscription.id,
                amount=due,
                currency=subscription.currency,
                status="failed",
                failure_reason=reason,
                provider_reference=provider_reference,
                idempotency_key=idempotency_key,
                created_at=when,
                updated_at=when,
            )
        )
    return invoice


def outstanding_dues(subscription: Subscription) -> tuple[int, list[Invoice]]:
    """Return the total of the subscription's open invoices and the invoices themselves."""
    invoices = list(
        db_session().scalars(
            select(Invoice)
            .filter_by(subscription_id=subscription.id, status="open")
            .order_by(Invoice.issued_at, Invoice.id)
        )
    )
    return sum(invoice.total for invoice in invoices), invoices


def new_invoice(
    customer: Customer,
    items: list[dict[str, Any]],
    *,
    currency: str,
    tax: int,
    subscription: Subscription | None,
    status: str,
    issued_at: datetime,
    due_at: datetime | None,
) -> Invoice:
    """Build (don't add) an invoice with the business's next number and frozen snapshots.

    Takes the number inside the caller's transaction; ``items`` come from
    :func:`invoice_lines`.
    """
    subtotal = sum(item["amount"] for item in items)
    business = customer.business
    return Invoice(
        business_id=business.id,
        customer_id=customer.id,
        subscription_id=subscription.id if subscription else None,
        number=_next_invoice_number(business, customer.mode),
        status=status,
        currency=currency,
        subtotal=subtotal,
        tax=tax,
        total=subtotal + tax,
        issued_at=issued_at,
        due_at=due_at,
        business_snapshot=business.snapshot(),
        customer_snapshot=customer.snapshot(),
        lines=[InvoiceLine(position=i, **item) for i, item in enumerate(items, 1)],
    )


def _next_invoice_number(business: Business, mode: str) -> str:
    # One atomic increment: concurrent invoices of a business never share a number.
    column = Business.invoice_counter_test if mode == "test" else Business.invoice_counter_live
    statement = (
        update(Business)
        .where(Business.id == business.id)
        .values({column: column + 1})
        .returning(column)
        .execution_options(synchronize_session=False)
    )
    counter = db_session().execute(statement).scalar_one()
    prefix = business.invoice_prefix + ("-TEST" if mode == "test" else "")
    return f"{prefix}-{counter:06d}"


def invoice_lines(lines: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Check invoice lines (description, unit_amount, quantity) and compute their amounts."""
    if isinstance(lines, (str, bytes, Mapping)):
        raise ValidationError("lines", "must be a list of lines")
    items = []
    for index, line in enumerate(lines):
        field = f"lines[{index}]"
        if not isinstance(line, Mapping):
            raise ValidationError(field, "must be a mapping with description and unit_amount")
        unknown = set(line) - {"description", "unit_amount", "quantity"}
        if unknown:
            raise ValidationError(f"{field}.{sorted(unknown)[0]}", "is not a line field")
        quantity = v.count(f"{field}.quantity", line.get("quantity", 1))
        unit_amount = v.amount(f"{field}.unit_amount", line.get("unit_amount"))
        items.append(
            {
                "description": v.required_text(
                    f"{field}.description", line.get("description"), max_length=500
                ),
                "quantity": quantity,
                "unit_amount": unit_amount,
                "amount": quantity * unit_amount,
            }
        )
    if not items:
        raise ValidationError("lines", "an invoice needs at least one line")
    return items


def _payment_fields(
    customer: Customer, *, invoice: Invoice | None, **values: Any
) -> dict[str, Any]:
    status = v.choice("status", values["status"], ("succeeded", "failed", "pending"))
    fields = {
        "customer_id": customer.id,
        "invoice_id": None,
        "subscription_id": None,
        "amount": v.amount("amount", values["amount"], positive=True),
        "currency": v.currency("currency", values["currency"]),
        "status": status,
        "provider_reference": v.text(
            "provider_reference", values["provider_reference"], max_length=255, required=False
        ),
        "idempotency_key": v.text(
            "idempotency_key", values["idempotency_key"], max_length=255, required=False
        ),
        "failure_reason": v.text(
            "failure_reason", values["failure_reason"], max_length=500, required=False
        ),
    }
    if status == "failed" and not fields["failure_reason"]:
        raise ValidationError("failure_reason", "is required for a failed payment")
    if invoice is not None:
        _check_owner("invoice", invoice.customer_id, customer)
        if invoice.currency != fields["currency"]:
            raise ValidationError("currency", "differs from the invoice's currency")
        fields["invoice_id"] = invoice.id
        fields["subscription_id"] = invoice.subscription_id
    return fields


def _apply_to_invoice(invoice: Invoice, amount: int, when: datetime) -> None:
    # Lock the invoice: two payments racing cannot both fit in what is due.
    session = db_session()
    session.refresh(invoice, with_for_update=True)
    if invoice.status != "open":
        raise ValidationError("invoice", f"is {invoice.status}; it takes no payments")
    paid = session.scalar(
        select(func.coalesce(func.sum(Payment.amount), 0)).filter_by(
            invoice_id=invoice.id, status="succeeded"
        )
    )
    due = invoice.total - int(paid or 0)
    if amount > due:
        raise ValidationError("amount", f"exceeds the amount due on the invoice ({due})")
    if amount == due:
        invoice.status, invoice.paid_at = "paid", when


def _same_payment(existing: Payment, fields: dict[str, Any]) -> Payment:
    for key in ("customer_id", "amount", "currency", "invoice_id", "status"):
        if getattr(existing, key) != fields[key]:
            raise ValidationError("idempotency_key", "was already used for a different payment")
    return existing


def _check_owner(field: str, owner_id: int, customer: Customer) -> None:
    if owner_id != customer.id:
        raise ValidationError(field, "belongs to another customer")


def _period_description(subscription: Subscription, starts: datetime, ends: datetime) -> str:
    name = " ".join(filter(None, (subscription.product, subscription.plan)))
    return f"{name} ({starts:%Y-%m-%d} – {ends:%Y-%m-%d})"


#: The status filters of the billing history: which statuses of which kind of
#: record each one shows. Every status of every record is under exactly one.
HISTORY_FILTERS: dict[str, dict[str, tuple[str, ...]]] = {
    "paid": {"invoice": ("paid",), "payment": ("succeeded",)},
    "open": {"invoice": ("open", "draft"), "payment": ("pending", "requires_action")},
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

    One statement per page, whatever the page and however long the history:
    the three tables are merged with ``UNION ALL``, ordered by (time, kind,
    public id), and the page starts after a cursor (keyset pagination), never
    at an offset.

    :param status: one of :data:`HISTORY_FILTERS`, or ``None`` for everything.
    :param after: the ``older`` cursor of the page before: the page that follows it.
    :param before: the ``newer`` cursor of a page: the page that precedes it.
    :raises ValidationError: an unknown ``status`` or a malformed cursor.
    """
    if status is not None and status not in HISTORY_FILTERS:
        raise ValidationError("status", f"choose one of {', '.join(HISTORY_FILTERS)}")
    if after is not None and before is not None:
        raise ValidationError("before", "give after or before, not both")
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
    return db_session().scalar(
        select(Invoice)
        .filter_by(customer_id=customer.id, business_id=customer.business_id, public_id=public_id)
        .options(selectinload(Invoice.lines))
    )


def invoice_payments(invoice: Invoice) -> list[Payment]:
    """Return the payments and failed attempts made on ``invoice``, oldest first, with refunds."""
    return list(
        db_session().scalars(
            select(Payment)
            .filter_by(invoice_id=invoice.id, customer_id=invoice.customer_id)
            .options(selectinload(Payment.refunds))
            .order_by(Payment.created_at, Payment.id)
        )
    )


_Position = tuple[datetime, str, str]


def _cursor(field: str, value: str) -> _Position:
    message = "is not a position in this history; start again from the first page"
    if len(value) > 200:  # a real cursor is about 100 characters
        raise ValidationError(field, message)
    try:
        at, kind, public_id = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
        moment = datetime.fromisoformat(at)
    except (ValueError, TypeError):
        raise ValidationError(field, message) from None
    known = isinstance(kind, str) and kind in _HISTORY_KINDS and isinstance(public_id, str)
    if not known or moment.tzinfo is None:
        raise ValidationError(field, message)
    return moment, kind, public_id


def _history_rows(
    customer: Customer, status: str | None, position: _Position | None, *, newer: bool, limit: int
) -> list[HistoryEntry]:
    history = union_all(*(rows_of(customer) for rows_of in _HISTORY_KINDS.values())).subquery()
    columns = (history.c.at, history.c.kind, history.c.public_id)
    query = select(history)
    if status is not None:
        query = query.where(
            or_(
                *(
                    and_(history.c.kind == kind, history.c.status.in_(statuses))
                    for kind, statuses in HISTORY_FILTERS[status].items()
                )
            )
        )
    if position is not None:
        query = query.where(_beyond(columns, position, newer=newer))
    order = columns if newer else tuple(column.desc() for column in columns)
    rows = db_session().execute(query.order_by(*order).limit(limit + 1))
    return [_entry(row) for row in rows]


def _beyond(columns: tuple[Any, Any, Any], position: _Position, *, newer: bool) -> Any:
    # (at, kind, public_id) compared as a tuple, spelled out: row values are
    # not everywhere, and each comparison binds through its column's type.
    beyond = operator.gt if newer else operator.lt
    (at, kind, public_id), (spot_at, spot_kind, spot_id) = columns, position
    return or_(
        beyond(at, spot_at),
        and_(
            at == spot_at,
            or_(beyond(kind, spot_kind), and_(kind == spot_kind, beyond(public_id, spot_id))),
        ),
    )


def _invoice_rows(customer: Customer) -> Select[*tuple[Any, ...]]:
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
    ).where(Invoice.customer_id == customer.id)


def _payment_rows(customer: Customer) -> Select[*tuple[Any, ...]]:
    return (
        select(
            literal_column("'payment'", String),
            Payment.public_id,
            Payment.created_at,
            Payment.status,
            Payment.amount,
            Payment.currency,
            Invoice.public_id,
            Invoice.number,
            Payment.failure_reason,
        )
        .outerjoin(Invoice, Payment.invoice_id == Invoice.id)
        .where(Payment.customer_id == customer.id)
    )


def _refund_rows(customer: Customer) -> Select[*tuple[Any, ...]]:
    return (
        select(
            literal_column("'refund'", String),
            Refund.public_id,
            Refund.created_at,
            Refund.status,
            Refund.amount,
            Refund.currency,
            Invoice.public_id,
            Invoice.number,
            Refund.reason,
        )
        .join(Payment, Refund.payment_id == Payment.id)
        .outerjoin(Invoice, Payment.invoice_id == Invoice.id)
        .where(Payment.customer_id == customer.id)
    )


_HISTORY_KINDS: dict[str, Callable[[Customer], Select[*tuple[Any, ...]]]] = {
    "invoice": _invoice_rows,
    "payment": _payment_rows,
    "refund": _refund_rows,
}


def _entry(row: Row[Any]) -> HistoryEntry:
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
