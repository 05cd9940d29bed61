"""Subscriptions: their life (start, failed renewal, cancel, undo, end) and the one status change.

Every change of status goes through :func:`transition`, one conditional
UPDATE from the statuses :data:`ALLOWED_FROM` allows (P2). The functions the
merchant and the customer call commit as one unit and send their own signal.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask_babel import force_locale
from sqlalchemy import select, update
from sqlalchemy.orm import selectinload

from . import emails, signals
from . import validation as v
from .billing import dues_of, invoice_lines, new_invoice, void_dues
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
    Subscription,
)
from .proxies import portal, unit_of_work, update_one, update_rows

#: For each status, the statuses a subscription may come from.
ALLOWED_FROM: dict[str, frozenset[str]] = {
    "pending": frozenset(),
    "active": frozenset({"pending", "on_hold"}),
    "on_hold": frozenset({"active", "on_hold"}),
    "cancelled": frozenset({"pending", "active", "on_hold"}),
    "expired": frozenset({"active", "on_hold"}),
    "failed": frozenset({"pending"}),
}

#: The ways of cancelling: at the end of the paid period, or at once.
CANCEL_WAYS = ("period_end", "now")


def transition(subscription: Subscription, status: str, **changes: object) -> Subscription:
    """Move ``subscription`` to ``status`` with one conditional UPDATE; don't commit.

    The row changes only if its status, as the database has it now, is one of
    :data:`ALLOWED_FROM` ``[status]``; two requests racing to change the same
    subscription cannot both win. ``changes`` are other columns to set in the
    same statement (``cancelled_at=...``).

    :raises InvalidTransition: the subscription is not in an allowed status.
    """
    allowed = ALLOWED_FROM[v.choice("status", status, tuple(ALLOWED_FROM))]
    _change(subscription, status, Subscription.status.in_(allowed), status=status, **changes)
    return subscription


def _change(subscription: Subscription, target: str, *conditions: Any, **values: Any) -> None:
    # One UPDATE of the row under ``conditions``: a request that lost a race to
    # another learns it from the row count, and changes nothing.
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
    product: str,
    price: int,
    currency: str,
    plan: str | None = None,
    interval: str = "month",
    interval_count: int = 1,
    quantity: int = 1,
    status: str = "active",
    start: datetime | None = None,
) -> Subscription:
    """Start a subscription for ``customer`` and commit it.

    The first period begins at ``start`` (now by default) and lasts
    ``interval_count`` ``interval``\\ s; the next billing date is its end.

    :param price: the price of one unit for one period, in minor units.
    :param status: ``"active"`` (paid for) or ``"pending"`` (awaiting a first payment).
    """
    interval = v.choice("interval", interval, INTERVALS)
    interval_count = v.count("interval_count", interval_count)
    fields = {
        "product": v.required_text("product", product, max_length=200),
        "plan": v.text("plan", plan, max_length=200, required=False) or "",
        "price_amount": v.amount("price", price),
        "currency": v.currency("currency", currency),
        "interval": interval,
        "interval_count": interval_count,
        "quantity": v.count("quantity", quantity),
        "status": v.choice("status", status, ("active", "pending")),
    }
    begins = v.aware("start", start, required=False) or utcnow()
    ends = add_interval(begins, interval, interval_count)
    with unit_of_work() as session:
        subscription = Subscription(
            customer_id=customer.id,
            current_period_start=begins,
            current_period_end=ends,
            next_billing_at=ends if status == "active" else None,
            cancel_at_period_end=False,
            **fields,
        )
        session.add(subscription)
    return subscription


def add_interval(moment: datetime, interval: str, count: int = 1) -> datetime:
    """Return ``moment`` plus ``count`` intervals; Jan 31 plus one month is Feb 28 (or 29)."""
    if interval == "day":
        return moment + timedelta(days=count)
    if interval == "week":
        return moment + timedelta(weeks=count)
    months = count * (12 if interval == "year" else 1)
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


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
    The invoice's line is written in the customer's language (their saved
    choice, else their business's), once.
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
                    raise ValidationError(
                        "idempotency_key",
                        "idempotency_conflict",
                        "was already used for another payment",
                    )
                return seen.invoice
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


def _period_line(subscription: Subscription, starts: datetime, ends: datetime) -> str:
    locale = locale_of(subscription.customer)
    with force_locale(locale):
        return gettext(
            "%(name)s (%(start)s – %(end)s)",
            name=subscription.name,
            start=date(starts, locale),
            end=date(ends, locale),
        )


def set_payment_method(subscription: Subscription, method: PaymentMethod) -> bool:
    """Charge ``subscription``'s renewals to ``method``; don't commit.

    One conditional UPDATE: a subscription that has ended never takes a
    method. Tells whether it took it.
    """
    return update_one(
        update(Subscription)
        .where(Subscription.id == subscription.id, Subscription.status.in_(CURRENT_STATUSES))
        .values(payment_method_id=method.id, updated_at=utcnow())
    )


# -- What the customer sees and does ---------------------------------------------------


@dataclass(frozen=True)
class SubscriptionList:
    """A customer's subscriptions, split for the subscriptions page.

    ``dues`` maps the row id of each on-hold subscription that owes money to
    the total of its open invoices (minor units, in the subscription's currency).
    """

    current: list[Subscription]
    past: list[Subscription]
    dues: dict[int, int]


def list_subscriptions(customer: Customer) -> SubscriptionList:
    """Return ``customer``'s subscriptions in at most two queries, whatever their history.

    Current ones (active, on hold, pending) oldest first; past ones most
    recently ended first.
    """
    rows = portal.session.scalars(
        select(Subscription)
        .filter_by(customer_id=customer.id)
        .options(selectinload(Subscription.payment_method))
        .order_by(Subscription.created_at, Subscription.id)
    ).all()
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


def get_subscription(customer: Customer, public_id: str) -> Subscription | None:
    """Return ``customer``'s subscription with this public id, or ``None`` (Z1)."""
    return portal.session.scalar(
        select(Subscription).filter_by(customer_id=customer.id, public_id=public_id)
    )


def cancel_options(subscription: Subscription) -> tuple[str, ...]:
    """Return the ways (of :data:`CANCEL_WAYS`) ``subscription`` can be cancelled now.

    An active subscription gets the ways its business offers
    (``Business.cancel_at_period_end``, ``Business.cancel_now``), without
    ``"period_end"`` once that is scheduled. An on-hold or pending subscription
    has no paid period left to run out, so it can only end ``"now"``, whatever
    the business offers: a customer can always cancel. An ended one has none.
    """
    if subscription.status in ("on_hold", "pending"):
        return ("now",)
    if subscription.status != "active":
        return ()
    business = subscription.customer.business
    ways = []
    if business.cancel_at_period_end and not subscription.cancel_at_period_end:
        ways.append("period_end")
    if business.cancel_now:
        ways.append("now")
    return tuple(ways)


def cancel_subscription(subscription: Subscription, *, at_period_end: bool) -> Subscription:
    """Cancel ``subscription`` the way the customer chose; queue the email; commit.

    At the end of the period (active subscriptions only): the status stays
    ``active`` until ``current_period_end``; ``cancel_at_period_end`` is set,
    ``cancelled_at`` is now and ``next_billing_at`` is cleared, so it is never
    charged again. ``ended_at`` stays empty until :func:`end_due_cancellations`
    ends it; :func:`undo_cancellation` takes it back until then.

    Now: the subscription becomes ``cancelled`` with ``cancelled_at`` and
    ``ended_at`` now, and its open invoices (the dues of an on-hold plan, the
    first invoice of a pending one) are voided, so nothing is shown as owed
    for a plan that has ended. Nothing is refunded.

    Sends :data:`~.signals.subscription_cancelled`.

    :raises ValidationError: it has already ended (code ``"already_cancelled"``,
        ``"already_expired"`` or ``"already_failed"``), or this way is not offered
        for it now (see :func:`cancel_options`; code ``"already_scheduled"``,
        ``"no_paid_period"``, ``"period_end_not_offered"`` or ``"now_not_offered"``).
    :raises InvalidTransition: it changed meanwhile (another request won).
    """
    way = "period_end" if at_period_end else "now"
    if subscription.status not in CURRENT_STATUSES:
        raise ValidationError(
            "subscription",
            f"already_{subscription.status}",
            f"this subscription has already ended ({subscription.status})",
        )
    if way not in cancel_options(subscription):
        raise _not_offered(subscription, way)
    now, previous_status, voided = utcnow(), subscription.status, 0
    with unit_of_work():
        if at_period_end:
            _change(
                subscription,
                "cancelled",
                Subscription.status == "active",
                Subscription.cancel_at_period_end.is_(False),
                cancel_at_period_end=True,
                cancelled_at=now,
                next_billing_at=None,
            )
            ends = subscription.current_period_end
        else:
            transition(
                subscription,
                "cancelled",
                cancelled_at=now,
                ended_at=now,
                cancel_at_period_end=False,
                next_billing_at=None,
            )
            voided = void_dues(subscription)
            ends = now
        emails.queue_subscription_cancelled(
            subscription,
            at_period_end=at_period_end,
            previous_status=previous_status,
            ends_at=ends,
            voided=voided,
        )
    signals.send(
        signals.subscription_cancelled,
        customer=subscription.customer,
        subscription=subscription,
        at_period_end=at_period_end,
    )
    return subscription


def _not_offered(subscription: Subscription, way: str) -> ValidationError:
    if way == "now":
        return ValidationError(
            "at_period_end", "now_not_offered", "cancelling at once is not offered"
        )
    if subscription.cancel_at_period_end:
        code, message = "already_scheduled", "is already set to end at the end of its period"
    elif subscription.status != "active":
        code, message = "no_paid_period", "has no paid period to run out; it can only end now"
    else:
        code, message = (
            "period_end_not_offered",
            "cancelling at the end of the period is not offered",
        )
    return ValidationError("at_period_end", code, message)


def undo_cancellation(subscription: Subscription) -> Subscription:
    """Take back a cancellation scheduled for the end of the period; queue the email; commit.

    The subscription renews again at the end of its period. Sends
    :data:`~.signals.cancellation_undone`.

    :raises ValidationError: no cancellation is scheduled (code
        ``"nothing_to_undo"``), or its period has ended (``"period_over"``).
    :raises InvalidTransition: it changed meanwhile (another request won).
    """
    now = utcnow()
    if subscription.status != "active" or not subscription.cancel_at_period_end:
        raise ValidationError(
            "subscription", "nothing_to_undo", "this subscription has no cancellation to undo"
        )
    if subscription.current_period_end <= now:
        raise ValidationError(
            "subscription", "period_over", "the period has ended; the cancellation stands"
        )
    with unit_of_work():
        _change(
            subscription,
            "active",
            Subscription.status == "active",
            Subscription.cancel_at_period_end.is_(True),
            Subscription.current_period_end > now,
            cancel_at_period_end=False,
            cancelled_at=None,
            next_billing_at=Subscription.current_period_end,
        )
        emails.queue_cancellation_undone(subscription)
    signals.send(
        signals.cancellation_undone, customer=subscription.customer, subscription=subscription
    )
    return subscription


def end_due_cancellations(now: datetime | None = None) -> int:
    """End every subscription whose scheduled cancellation has come; commit; return how many.

    One conditional UPDATE: active subscriptions with ``cancel_at_period_end``
    whose ``current_period_end`` is past become ``cancelled``, with
    ``ended_at`` the end of their period (``cancel_at_period_end`` stays set:
    it records how they ended). The customer was told when they cancelled, so
    no mail is sent. Run it from cron (``flask portal end-cancellations``).
    """
    moment = v.aware("now", now, required=False) or utcnow()
    with unit_of_work():
        return update_rows(
            update(Subscription)
            .where(
                Subscription.status == "active",
                Subscription.cancel_at_period_end.is_(True),
                Subscription.current_period_end <= moment,
            )
            .values(
                status="cancelled",
                ended_at=Subscription.current_period_end,
                next_billing_at=None,
                updated_at=moment,
            )
        )
