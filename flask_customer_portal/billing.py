"""Billing records: issuing invoices, recording payments and refunds, and what is owed.

These are the data API's writes (each commits as one unit, or raises
:class:`~.errors.ValidationError` and writes nothing), the numbering of
invoices, and the one definition of a subscription's dues: its open invoices.
What the customer reads of it is :mod:`.history`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select, update

from . import validation as v
from .db import utcnow
from .errors import ValidationError
from .models import Business, Customer, Invoice, InvoiceLine, Payment, Refund, Subscription
from .proxies import portal, unit_of_work, update_one, update_rows
from .records import claiming, merchant_fields


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
    external_id: str | None = None,
    metadata: Mapping[str, str | None] | None = None,
) -> Invoice:
    """Issue an invoice to ``customer`` and commit it.

    The invoice takes the next number of its business (``ACME-000042``) and a
    frozen copy of the business's and customer's details, so a later change of
    address never rewrites an issued invoice. Pay it with :func:`record_payment`.

    :param lines: mappings with ``description``, ``unit_amount`` (minor units)
        and optionally ``quantity`` (default 1).
    :param tax: the tax on the whole invoice, in minor units.
    :param status: ``"open"`` (awaiting payment) or ``"draft"``.
    :param external_id: your id for it, unique in its business and mode.
    :param metadata: your key-value pairs (see :func:`~.records.update_metadata`).
    """
    items = invoice_lines(lines)
    labels = merchant_fields(external_id, metadata)
    currency = v.currency("currency", currency)
    tax = v.amount("tax", tax)
    status = v.choice("status", status, ("open", "draft"))
    issued = v.aware("issued_at", issued_at, required=False) or utcnow()
    due = v.aware("due_at", due_at, required=False)
    if subscription is not None:
        _check_owner("subscription", subscription.customer_id, customer)
        if subscription.currency != currency:
            raise ValidationError(
                "currency", "currency_mismatch", "differs from the subscription's currency"
            )
    with claiming(Invoice, customer.scope, labels["external_id"]), unit_of_work() as session:
        invoice = new_invoice(
            customer,
            items,
            currency=currency,
            tax=tax,
            subscription=subscription,
            status=status,
            issued_at=issued,
            due_at=due,
            **labels,
        )
        session.add(invoice)
    return invoice


def void_invoice(invoice: Invoice) -> Invoice:
    """Void an open or draft invoice (it stays in the history, no longer due); commit."""
    with unit_of_work() as session:
        voided = update_one(
            update(Invoice)
            .where(Invoice.id == invoice.id, Invoice.status.in_(("open", "draft")))
            .values(status="void")
        )
        if not voided:
            raise ValidationError(
                "invoice",
                "not_voidable",
                f"a {invoice.status} invoice cannot be voided",
                status=invoice.status,
            )
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
    external_id: str | None = None,
    metadata: Mapping[str, str | None] | None = None,
) -> Payment:
    """Record a payment (or a failed attempt) the merchant's system made; commit.

    A succeeded payment that brings an open invoice's payments up to its total
    marks the invoice paid. Recording the same ``idempotency_key`` twice returns
    the first payment, so a retried webhook never records money twice.

    :param status: ``"succeeded"``, ``"failed"`` (give a ``failure_reason``) or ``"pending"``.
    :param at: when it happened (now by default).
    :param external_id: your id for it, unique in its business and mode.
    :param metadata: your key-value pairs (see :func:`~.records.update_metadata`).
    """
    labels = merchant_fields(external_id, metadata)
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
    with claiming(Payment, customer.scope, labels["external_id"]), unit_of_work() as session:
        if fields["idempotency_key"] is not None:
            existing = session.scalar(
                select(Payment).filter_by(idempotency_key=fields["idempotency_key"])
            )
            if existing is not None:
                return _same_payment(existing, fields)
        if invoice is not None and status == "succeeded":
            _apply_to_invoice(invoice, fields["amount"], when)
        payment = Payment(created_at=when, updated_at=when, **fields, **labels)
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
        raise ValidationError(
            "payment",
            "not_refundable",
            f"a {payment.status} payment cannot be refunded",
            status=payment.status,
        )
    reason = v.text("reason", reason, max_length=500, required=False)
    provider_reference = v.text(
        "provider_reference", provider_reference, max_length=255, identifier=True, required=False
    )
    idempotency_key = v.text(
        "idempotency_key", idempotency_key, max_length=255, identifier=True, required=False
    )
    when = v.aware("at", at, required=False) or utcnow()
    with unit_of_work() as session:
        if idempotency_key is not None:
            existing = session.scalar(select(Refund).filter_by(idempotency_key=idempotency_key))
            if existing is not None:
                if existing.payment_id != payment.id or amount not in (None, existing.amount):
                    raise ValidationError(
                        "idempotency_key",
                        "idempotency_conflict",
                        "was already used for a different refund",
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
            raise ValidationError(
                "amount",
                "exceeds_refundable",
                f"exceeds what is left to refund ({left})",
                left=left,
            )
        refund = Refund(
            payment_id=payment.id,
            customer_id=payment.customer_id,
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


# -- What is owed ----------------------------------------------------------------------


def _owed_by(subscription_ids: Iterable[int]) -> ColumnElement[bool]:
    # The one definition of dues: a subscription's invoices still open.
    return Invoice.subscription_id.in_(list(subscription_ids)) & (Invoice.status == "open")


def outstanding_dues(subscription: Subscription) -> tuple[int, list[Invoice]]:
    """Return the total of the subscription's open invoices and the invoices themselves."""
    invoices = list(
        portal.session.scalars(
            select(Invoice)
            .where(_owed_by([subscription.id]))
            .order_by(Invoice.issued_at, Invoice.id)
        )
    )
    return sum(invoice.total for invoice in invoices), invoices


@dataclass(frozen=True)
class Dues:
    """What a subscription owes: the total of its open invoices, and how many there are."""

    subscription: Subscription
    amount: int
    invoices: int


def dues_of(subscriptions: Sequence[Subscription]) -> dict[int, Dues]:
    """Return the dues of each of ``subscriptions`` by row id, in one query."""
    owed = {
        subscription_id: (int(total), int(count))
        for subscription_id, total, count in portal.session.execute(
            select(Invoice.subscription_id, func.sum(Invoice.total), func.count())
            .where(_owed_by(subscription.id for subscription in subscriptions))
            .group_by(Invoice.subscription_id)
        )
    }
    return {
        subscription.id: Dues(subscription, *owed.get(subscription.id, (0, 0)))
        for subscription in subscriptions
    }


def void_dues(subscription: Subscription, *, before: Invoice | None = None) -> int:
    """Void the subscription's open invoices; don't commit. Return their total.

    :param before: void only the invoices issued before this one (those an
        invoice that pays them all replaces).
    """
    older = () if before is None else (Invoice.id < before.id,)
    owed = select(func.coalesce(func.sum(Invoice.total), 0)).where(_owed_by([subscription.id]))
    total = int(portal.session.scalar(owed.where(*older)) or 0)
    update_rows(update(Invoice).where(_owed_by([subscription.id]), *older).values(status="void"))
    return total


# -- Building invoices -------------------------------------------------------------------


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
    **labels: Any,
) -> Invoice:
    """Build (don't add) an invoice with the business's next number and frozen snapshots.

    Takes the number inside the caller's transaction; ``items`` come from
    :func:`invoice_lines`, ``labels`` from :func:`~.records.merchant_fields`.
    """
    subtotal = sum(item["amount"] for item in items)
    business = customer.business
    return Invoice(
        business_id=business.id,
        mode=customer.mode,
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
        **labels,
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
    counter = portal.session.execute(statement).scalar_one()
    prefix = business.invoice_prefix + ("-TEST" if mode == "test" else "")
    return f"{prefix}-{counter:06d}"


def invoice_lines(lines: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Check invoice lines (description, unit_amount, quantity) and compute their amounts."""
    if isinstance(lines, (str, bytes, Mapping)):
        raise ValidationError("lines", "not_a_list", "must be a list of lines")
    items = []
    for index, line in enumerate(lines):
        field = f"lines[{index}]"
        if not isinstance(line, Mapping):
            raise ValidationError(
                field, "not_a_line", "must be a mapping with description and unit_amount"
            )
        unknown = set(line) - {"description", "unit_amount", "quantity"}
        if unknown:
            raise ValidationError(
                f"{field}.{sorted(unknown)[0]}", "unknown_field", "is not a line field"
            )
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
        raise ValidationError("lines", "no_lines", "an invoice needs at least one line")
    return items


def _payment_fields(
    customer: Customer, *, invoice: Invoice | None, **values: Any
) -> dict[str, Any]:
    status = v.choice("status", values["status"], ("succeeded", "failed", "pending"))
    fields = {
        "customer_id": customer.id,
        **customer.scope,
        "invoice_id": None,
        "subscription_id": None,
        "amount": v.amount("amount", values["amount"], positive=True),
        "currency": v.currency("currency", values["currency"]),
        "status": status,
        "provider_reference": v.text(
            "provider_reference",
            values["provider_reference"],
            max_length=255,
            identifier=True,
            required=False,
        ),
        "idempotency_key": v.text(
            "idempotency_key",
            values["idempotency_key"],
            max_length=255,
            identifier=True,
            required=False,
        ),
        "failure_reason": v.text(
            "failure_reason", values["failure_reason"], max_length=500, required=False
        ),
    }
    if status == "failed" and not fields["failure_reason"]:
        raise ValidationError("failure_reason", "required", "is required for a failed payment")
    if invoice is not None:
        _check_owner("invoice", invoice.customer_id, customer)
        if invoice.currency != fields["currency"]:
            raise ValidationError(
                "currency", "currency_mismatch", "differs from the invoice's currency"
            )
        fields["invoice_id"] = invoice.id
        fields["subscription_id"] = invoice.subscription_id
    return fields


def _apply_to_invoice(invoice: Invoice, amount: int, when: datetime) -> None:
    # Lock the invoice: two payments racing cannot both fit in what is due.
    session = portal.session
    session.refresh(invoice, with_for_update=True)
    if invoice.status != "open":
        raise ValidationError(
            "invoice",
            "invoice_closed",
            f"is {invoice.status}; it takes no payments",
            status=invoice.status,
        )
    paid = session.scalar(
        select(func.coalesce(func.sum(Payment.amount), 0)).filter_by(
            invoice_id=invoice.id, status="succeeded"
        )
    )
    due = invoice.total - int(paid or 0)
    if amount > due:
        raise ValidationError(
            "amount", "exceeds_due", f"exceeds the amount due on the invoice ({due})", due=due
        )
    if amount == due:
        invoice.status, invoice.paid_at = "paid", when


def _same_payment(existing: Payment, fields: dict[str, Any]) -> Payment:
    for key in ("customer_id", "amount", "currency", "invoice_id", "status"):
        if getattr(existing, key) != fields[key]:
            raise ValidationError(
                "idempotency_key",
                "idempotency_conflict",
                "was already used for a different payment",
            )
    return existing


def _check_owner(field: str, owner_id: int, customer: Customer) -> None:
    if owner_id != customer.id:
        raise ValidationError(field, "other_customer", "belongs to another customer")
