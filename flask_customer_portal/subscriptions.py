"""Subscriptions: starting them, their renewals, their payment method, and the one status change.

Every change of status goes through :func:`transition`, one conditional
UPDATE from the statuses :data:`ALLOWED_FROM` allows (P2). Cancelling is
:mod:`.cancellation`'s.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask_babel import force_locale
from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import joinedload

from . import signals
from . import validation as v
from .billing import dues_of, invoice_lines, new_invoice
from .catalogue import check_listed
from .db import utcnow
from .errors import InvalidTransition, ValidationError
from .formatting import date, locale_of
from .i18n import gettext
from .models import (
    CURRENT_STATUSES,
    INTERVALS,
    Customer,
    Invoice,
    Payment,
    PaymentMethod,
    Price,
    Subscription,
)
from .proration import add_interval
from .proxies import portal, unit_of_work, update_one
from .records import claiming, merchant_fields

#: For each status, the statuses a subscription may come from.
ALLOWED_FROM: dict[str, frozenset[str]] = {
    "pending": frozenset(),
    "active": frozenset({"pending", "on_hold"}),
    "on_hold": frozenset({"active", "on_hold"}),
    "cancelled": frozenset({"pending", "active", "on_hold"}),
    "expired": frozenset({"active", "on_hold"}),
    "failed": frozenset({"pending"}),
}


def transition(subscription: Subscription, status: str, **changes: object) -> Subscription:
    """Move ``subscription`` to ``status`` with one conditional UPDATE; don't commit.

    The row changes only if its status, as the database has it now, is one of
    :data:`ALLOWED_FROM` ``[status]``; two requests racing to change the same
    subscription cannot both win. ``changes`` are other columns to set in the
    same statement (``cancelled_at=...``).

    :raises InvalidTransition: the subscription is not in an allowed status.
    """
    allowed = ALLOWED_FROM[v.choice("status", status, tuple(ALLOWED_FROM))]
    change(subscription, status, Subscription.status.in_(allowed), status=status, **changes)
    return subscription


def change(subscription: Subscription, target: str, *conditions: Any, **values: Any) -> None:
    """Change ``subscription``'s row with one UPDATE under ``conditions``; don't commit.

    For changes that keep the status as :func:`transition` does for those that
    change it: a request that lost a race to another learns it from the row
    count and changes nothing.

    :raises InvalidTransition: the row did not meet ``conditions`` (``target``
        names what was attempted).
    """
    changed = update_one(
        update(Subscription)
        .where(Subscription.id == subscription.id, *conditions)
        .values(updated_at=utcnow(), **values)
    )
    portal.session.refresh(subscription)
    if not changed:
        raise InvalidTransition(subscription.public_id, target, subscription.status)


def start_subscription(
    customer: Customer,
    *,
    product: str | None = None,
    price: int | Price,
    currency: str | None = None,
    plan: str | None = None,
    interval: str = "month",
    interval_count: int = 1,
    quantity: int = 1,
    status: str = "active",
    start: datetime | None = None,
    external_id: str | None = None,
    metadata: Mapping[str, str | None] | None = None,
) -> Subscription:
    """Start a subscription for ``customer`` and commit it.

    The first period begins at ``start`` (now by default) and lasts
    ``interval_count`` ``interval``\\ s; the next billing date is its end.

    :param price: the price of one unit for one period, in minor units; or a
        catalogue :class:`~.models.Price` of the customer's business and mode,
        whose product, name, amount, currency and interval the subscription
        takes (then give none of those), and whose seat limits ``quantity`` keeps.
    :param status: ``"active"`` (paid for) or ``"pending"`` (awaiting a first payment).
    :param external_id: your id for it, unique in its business and mode.
    :param metadata: your key-value pairs (see :func:`~.records.update_metadata`).
    """
    labels = merchant_fields(external_id, metadata)
    listed = price if isinstance(price, Price) else None
    if listed is not None:
        check_listed(listed, customer, quantity)
        product, plan, price = listed.product.name, listed.name, listed.amount
        currency, interval, interval_count = listed.currency, listed.interval, listed.interval_count
    fields = {
        **plan_terms(
            product=product,
            plan=plan,
            price=price,
            interval=interval,
            interval_count=interval_count,
            quantity=quantity,
        ),
        "currency": v.currency("currency", currency),
        "status": v.choice("status", status, ("active", "pending")),
    }
    begins = v.aware("start", start, required=False) or utcnow()
    ends = add_interval(begins, fields["interval"], fields["interval_count"])
    with claiming(Subscription, customer.scope, labels["external_id"]), unit_of_work() as session:
        subscription = Subscription(
            customer_id=customer.id,
            **customer.scope,
            current_period_start=begins,
            current_period_end=ends,
            next_billing_at=ends if status == "active" else None,
            cancel_at_period_end=False,
            price_id=listed.id if listed else None,
            **fields,
            **labels,
        )
        session.add(subscription)
    return subscription


def plan_terms(
    *, product: Any, plan: Any, price: Any, interval: Any, interval_count: Any, quantity: Any
) -> dict[str, Any]:
    """Return a plan's terms checked, as the columns of a subscription (``price_amount``...)."""
    return {
        "product": v.required_text("product", product, max_length=200),
        "plan": v.text("plan", plan, max_length=200, required=False) or "",
        "price_amount": v.amount("price", price),
        "interval": v.choice("interval", interval, INTERVALS),
        "interval_count": v.count("interval_count", interval_count),
        "quantity": v.count("quantity", quantity),
    }


def record_failed_renewal(
    subscription: Subscription,
    *,
    reason: str,
    amount: int | None = None,
    provider_reference: str | None = None,
    idempotency_key: str | None = None,
    at: datetime | None = None,
    invoice_external_id: str | None = None,
    invoice_metadata: Mapping[str, str | None] | None = None,
) -> Invoice:
    """Record that a renewal payment failed: open an invoice for the dues, put the plan on hold.

    In one transaction: the subscription moves to the next period, an open
    invoice for that period (``amount``, default price × quantity) is issued, a
    failed payment with ``reason`` is recorded against it, and the subscription
    becomes ``on_hold`` (it may already be). Commits; returns the invoice.
    Recording the same ``idempotency_key`` again returns the first invoice.
    The invoice's line is written in the customer's language (their saved
    choice, else their business's), once.

    :param invoice_external_id: your id for the invoice, unique in its business and mode.
    :param invoice_metadata: your key-value pairs for the invoice.
    """
    labels = merchant_fields(invoice_external_id, invoice_metadata)
    reason = v.required_text("reason", reason, max_length=500)
    provider_reference = v.text(
        "provider_reference", provider_reference, max_length=255, identifier=True, required=False
    )
    idempotency_key = v.text(
        "idempotency_key", idempotency_key, max_length=255, identifier=True, required=False
    )
    due = v.amount("amount", subscription.amount if amount is None else amount, positive=True)
    when = v.aware("at", at, required=False) or utcnow()
    customer = subscription.customer
    starts = subscription.current_period_end
    ends = add_interval(starts, subscription.interval, subscription.interval_count)
    with claiming(Invoice, customer.scope, labels["external_id"]), unit_of_work():
        seen = _renewal_seen(subscription, idempotency_key, "failed")
        if seen is not None:
            return seen
        transition(
            subscription,
            "on_hold",
            current_period_start=starts,
            current_period_end=ends,
            next_billing_at=None,
        )
        line = {"description": _period_line(subscription, starts, ends), "unit_amount": due}
        invoice = new_invoice(
            customer,
            invoice_lines([line]),
            currency=subscription.currency,
            tax=0,
            subscription=subscription,
            status="open",
            issued_at=when,
            due_at=when,
            **labels,
        )
        _add_renewal_payment(
            invoice,
            subscription,
            status="failed",
            failure_reason=reason,
            provider_reference=provider_reference,
            idempotency_key=idempotency_key,
            at=when,
        )
    return invoice


def record_renewal(
    subscription: Subscription,
    *,
    period_end: datetime | None = None,
    lines: Iterable[Mapping[str, Any]] | None = None,
    tax: int = 0,
    provider_reference: str | None = None,
    idempotency_key: str | None = None,
    at: datetime | None = None,
    invoice_external_id: str | None = None,
    invoice_metadata: Mapping[str, str | None] | None = None,
) -> Invoice:
    """Record a renewal the merchant's system was paid for: the next period, its invoice, paid.

    In one transaction: the subscription, active and not set to cancel at its
    period's end, moves to its next period (from its current end to
    ``period_end``, by default one billing interval later) and renews again at
    its end; a paid invoice for that period is issued, with a succeeded
    payment of its total. Commits; sends :data:`~.signals.subscription_renewed`
    and returns the invoice. Recording the same ``idempotency_key`` again
    returns the first invoice and changes nothing.

    :param lines: the invoice's lines, as for :func:`~.billing.issue_invoice`;
        by default one line naming the plan and the period, at its price ×
        quantity, in the customer's language.
    :param tax: the tax on the whole invoice, in minor units.
    :param invoice_external_id: your id for the invoice, unique in its business and mode.
    :param invoice_metadata: your key-value pairs for the invoice.
    :raises InvalidTransition: the subscription is not active, is set to
        cancel at its period's end, or was renewed meanwhile.
    """
    provider_reference = v.text(
        "provider_reference", provider_reference, max_length=255, identifier=True, required=False
    )
    idempotency_key = v.text(
        "idempotency_key", idempotency_key, max_length=255, identifier=True, required=False
    )
    tax = v.amount("tax", tax)
    when = v.aware("at", at, required=False) or utcnow()
    period_end = v.aware("period_end", period_end, required=False)
    items = invoice_lines(lines) if lines is not None else None
    labels = merchant_fields(invoice_external_id, invoice_metadata)
    with claiming(Invoice, subscription.customer.scope, labels["external_id"]), unit_of_work():
        seen = _renewal_seen(subscription, idempotency_key, "succeeded")
        if seen is not None:
            return seen
        starts = subscription.current_period_end
        interval, count = subscription.interval, subscription.interval_count
        ends = period_end or add_interval(starts, interval, count)
        if ends <= starts:
            raise ValidationError(
                "period_end", "before_period_start", "must be after the current period's end"
            )
        if items is None:
            line = {"description": _period_line(subscription, starts, ends)}
            items = invoice_lines([{**line, "unit_amount": subscription.amount}])
        change(
            subscription,
            "active",
            Subscription.status == "active",
            Subscription.cancel_at_period_end.is_(False),
            Subscription.current_period_end == starts,
            current_period_start=starts,
            current_period_end=ends,
            next_billing_at=ends,
        )
        invoice = new_invoice(
            subscription.customer,
            items,
            currency=subscription.currency,
            tax=tax,
            subscription=subscription,
            status="paid",
            issued_at=when,
            due_at=when,
            **labels,
        )
        invoice.paid_at = when
        payment = _add_renewal_payment(
            invoice,
            subscription,
            status="succeeded",
            provider_reference=provider_reference,
            idempotency_key=idempotency_key,
            at=when,
        )
    signals.send(
        signals.subscription_renewed,
        customer=subscription.customer,
        subscription=subscription,
        invoice=invoice,
        payment=payment,
    )
    return invoice


def _renewal_seen(
    subscription: Subscription, idempotency_key: str | None, status: str
) -> Invoice | None:
    # The invoice of the renewal already recorded under this key, or None. A key
    # of another payment, or of this subscription's renewal with the other
    # outcome (paid, failed), is a conflict.
    if idempotency_key is None:
        return None
    seen = portal.session.scalar(select(Payment).filter_by(idempotency_key=idempotency_key))
    if seen is None:
        return None
    if seen.subscription_id != subscription.id or seen.invoice is None or seen.status != status:
        raise ValidationError(
            "idempotency_key", "idempotency_conflict", "was already used for another payment"
        )
    return seen.invoice


def _add_renewal_payment(
    invoice: Invoice, subscription: Subscription, *, at: datetime, **fields: Any
) -> Payment:
    # The renewal's payment (or failed attempt) of the invoice's total; don't commit.
    session = portal.session
    session.add(invoice)
    session.flush()
    payment = Payment(
        customer_id=invoice.customer_id,
        business_id=invoice.business_id,
        mode=invoice.mode,
        invoice_id=invoice.id,
        subscription_id=subscription.id,
        amount=invoice.total,
        currency=invoice.currency,
        created_at=at,
        updated_at=at,
        **fields,
    )
    session.add(payment)
    return payment


def _period_line(subscription: Subscription, starts: datetime, ends: datetime) -> str:
    locale = locale_of(subscription.customer)
    with force_locale(locale):
        return gettext(
            "%(name)s (%(start)s – %(end)s)",
            name=subscription.name,
            start=date(starts, locale),
            end=date(ends, locale),
        )


def set_payment_method(subscription: Subscription, method: PaymentMethod, *conditions: Any) -> bool:
    """Charge ``subscription``'s renewals to ``method``; don't commit.

    One conditional UPDATE: a subscription that has ended never takes a
    method, nor one whose row fails ``conditions``. Tells whether it took it.
    """
    return update_one(
        update(Subscription)
        .where(
            Subscription.id == subscription.id,
            Subscription.status.in_(CURRENT_STATUSES),
            *conditions,
        )
        .values(payment_method_id=method.id, updated_at=utcnow())
    )


# -- What the customer sees ---------------------------------------------------------------


@dataclass(frozen=True)
class SubscriptionList:
    """A customer's subscriptions, split for the subscriptions page.

    ``dues`` maps the row id of each on-hold subscription that owes money to
    the total of its open invoices (minor units, in the subscription's currency).
    """

    current: list[Subscription]
    past: list[Subscription]
    dues: dict[int, int]


def subscription_listing(customer: Customer) -> SubscriptionList:
    """Return ``customer``'s subscriptions for their page, in one query (two with dues).

    Current ones (active, on hold, pending) oldest first; past ones most
    recently ended first; each with its payment method.
    """
    rows = portal.session.scalars(_ALL_SUBSCRIPTIONS, {"customer_id": customer.id}).all()
    current = [s for s in rows if s.status in CURRENT_STATUSES]
    past = sorted(
        (s for s in rows if s.status not in CURRENT_STATUSES),
        key=lambda s: s.ended_at or s.updated_at,
        reverse=True,
    )
    on_hold = [s for s in current if s.status == "on_hold"]
    owed = dues_of(on_hold) if on_hold else {}
    dues = {id_: owing.amount for id_, owing in owed.items() if owing.amount}
    return SubscriptionList(current=current, past=past, dues=dues)


#: A customer's subscriptions with their payment methods, built once (the list page runs it).
_ALL_SUBSCRIPTIONS = (
    select(Subscription)
    .where(Subscription.customer_id == bindparam("customer_id"))
    .options(joinedload(Subscription.payment_method))
    .order_by(Subscription.created_at, Subscription.id)
)
