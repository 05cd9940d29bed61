"""Subscriptions: starting them, the one function that changes their status, and cancelling."""

from __future__ import annotations

import calendar
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import selectinload

from . import formatting, mail
from . import validation as v
from .db import db_session, unit_of_work, utcnow
from .errors import InvalidTransition, ValidationError
from .i18n import N_, _l, lazy_period
from .models import INTERVALS, Customer, Invoice, OutboxMessage, Subscription

#: For each status, the statuses a subscription may come from.
ALLOWED_FROM: dict[str, frozenset[str]] = {
    "pending": frozenset(),
    "active": frozenset({"pending", "on_hold"}),
    "on_hold": frozenset({"active", "on_hold"}),
    "cancelled": frozenset({"pending", "active", "on_hold"}),
    "expired": frozenset({"active", "on_hold"}),
    "failed": frozenset({"pending"}),
}

#: Statuses a subscription never leaves.
FINAL = frozenset({"cancelled", "expired", "failed"})


def transition(subscription: Subscription, status: str, **changes: object) -> Subscription:
    """Move ``subscription`` to ``status`` with one conditional UPDATE; don't commit.

    The row changes only if its status, as the database has it now, is one of
    :data:`ALLOWED_FROM` ``[status]``; two requests racing to change the same
    subscription cannot both win. ``changes`` are other columns to set in the
    same statement (``cancelled_at=...``).

    :raises InvalidTransition: the subscription is not in an allowed status.
    """
    allowed = ALLOWED_FROM[v.choice("status", status, tuple(ALLOWED_FROM))]
    session = db_session()
    result = session.execute(
        update(Subscription)
        .where(Subscription.id == subscription.id, Subscription.status.in_(allowed))
        .values(status=status, updated_at=utcnow(), **changes)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        session.refresh(subscription)
        raise InvalidTransition(subscription.public_id, status, subscription.status)
    session.refresh(subscription)
    return subscription


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


# -- What the customer sees and does ---------------------------------------------------

#: Statuses shown under "current" on the subscriptions page; the others are past.
CURRENT = ("active", "on_hold", "pending")

#: The ways of cancelling: at the end of the paid period, or at once.
CANCEL_WAYS = ("period_end", "now")


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
    session = db_session()
    rows = session.scalars(
        select(Subscription)
        .filter_by(customer_id=customer.id)
        .options(selectinload(Subscription.payment_method))
        .order_by(Subscription.created_at, Subscription.id)
    ).all()
    current = [s for s in rows if s.status in CURRENT]
    past = sorted(
        (s for s in rows if s.status not in CURRENT),
        key=lambda s: s.ended_at or s.updated_at,
        reverse=True,
    )
    on_hold = [s.id for s in current if s.status == "on_hold"]
    dues: dict[int, int] = {}
    if on_hold:
        totals = session.execute(
            select(Invoice.subscription_id, func.sum(Invoice.total))
            .where(Invoice.subscription_id.in_(on_hold), Invoice.status == "open")
            .group_by(Invoice.subscription_id)
        )
        dues = {sid: int(total) for sid, total in totals if sid is not None}
    return SubscriptionList(current=current, past=past, dues=dues)


def subscription_name(subscription: Subscription) -> str:
    """Return what the customer calls the subscription: product and plan (``Acme Cloud Pro``)."""
    return " ".join(filter(None, (subscription.product, subscription.plan)))


def get_subscription(customer: Customer, public_id: str) -> Subscription | None:
    """Return ``customer``'s subscription with this public id, or ``None`` (Z1)."""
    return db_session().scalar(
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

    Send :data:`~.signals.subscription_cancelled` after this returns.

    :raises ValidationError: this way is not offered for this subscription
        (see :func:`cancel_options`), or it has already ended.
    :raises InvalidTransition: it changed meanwhile (another request won).
    """
    way = "period_end" if at_period_end else "now"
    if subscription.status not in CURRENT:
        raise ValidationError("subscription", _ENDED[subscription.status])
    if way not in cancel_options(subscription):
        raise ValidationError("at_period_end", _not_offered(subscription, way))
    now, previous_status, voided = utcnow(), subscription.status, 0
    with unit_of_work():
        if at_period_end:
            _conditional_update(
                subscription,
                "cancelled",
                (Subscription.status == "active", Subscription.cancel_at_period_end.is_(False)),
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
            voided = _void_open_invoices(subscription)
            ends = now
        mail.queue_mail(
            subscription.customer,
            "subscription_cancelled",
            subscription_id=subscription.id,
            at_period_end=at_period_end,
            previous_status=previous_status,
            ends_at=ends,
            voided=voided,
        )
    return subscription


def undo_cancellation(subscription: Subscription) -> Subscription:
    """Take back a cancellation scheduled for the end of the period; queue the email; commit.

    The subscription renews again at the end of its period. Send
    :data:`~.signals.cancellation_undone` after this returns.

    :raises ValidationError: no cancellation is scheduled, or its period has ended.
    :raises InvalidTransition: it changed meanwhile (another request won).
    """
    now = utcnow()
    if subscription.status != "active" or not subscription.cancel_at_period_end:
        raise ValidationError("subscription", N_("This subscription has no cancellation to undo."))
    if subscription.current_period_end <= now:
        raise ValidationError(
            "subscription", N_("This subscription's period has ended; the cancellation stands.")
        )
    with unit_of_work():
        _conditional_update(
            subscription,
            "active",
            (
                Subscription.status == "active",
                Subscription.cancel_at_period_end.is_(True),
                Subscription.current_period_end > now,
            ),
            cancel_at_period_end=False,
            cancelled_at=None,
            next_billing_at=Subscription.current_period_end,
        )
        mail.queue_mail(
            subscription.customer,
            "cancellation_undone",
            subscription_id=subscription.id,
            renews_at=subscription.current_period_end,
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
    with unit_of_work() as session:
        result = session.execute(
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
            .execution_options(synchronize_session=False)
        )
    return int(result.rowcount)  # type: ignore[attr-defined]


_ENDED = {
    "cancelled": N_("This subscription has already been cancelled."),
    "expired": N_("This subscription has already expired."),
    "failed": N_("This subscription has already failed to start."),
}


def _not_offered(subscription: Subscription, way: str) -> str:
    if way == "period_end" and subscription.cancel_at_period_end:
        return N_("This subscription is already set to end at the end of its period.")
    if way == "period_end" and subscription.status != "active":
        return N_("This subscription has no paid period to run out; it can only end now.")
    if way == "period_end":
        return N_("Cancelling at the end of the period is not offered; you can cancel now.")
    return N_("Cancelling at once is not offered; you can cancel at the end of the period.")


def _conditional_update(
    subscription: Subscription, target: str, conditions: tuple[Any, ...], **values: Any
) -> None:
    # Like transition(), for changes that keep the status: one UPDATE, and a
    # request that lost a race to another learns it from the row count.
    session = db_session()
    result = session.execute(
        update(Subscription)
        .where(Subscription.id == subscription.id, *conditions)
        .values(updated_at=utcnow(), **values)
        .execution_options(synchronize_session=False)
    )
    session.refresh(subscription)
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise InvalidTransition(subscription.public_id, target, subscription.status)


def _void_open_invoices(subscription: Subscription) -> int:
    session = db_session()
    total = session.scalar(
        select(func.coalesce(func.sum(Invoice.total), 0)).filter_by(
            subscription_id=subscription.id, status="open"
        )
    )
    session.execute(
        update(Invoice)
        .filter_by(subscription_id=subscription.id, status="open")
        .values(status="void")
        .execution_options(synchronize_session=False)
    )
    return int(total or 0)


@mail.composer("subscription_cancelled")
def _compose_cancelled(message: OutboxMessage) -> mail.Composed | None:
    subscription = _subscription_of(message)
    if subscription is None:
        return None
    customer = subscription.customer
    locale = formatting.locale_of(customer)
    name = subscription_name(subscription)
    ends_on = formatting.date(datetime.fromisoformat(message.params["ends_at"]), locale, "long")
    at_period_end = bool(message.params["at_period_end"])
    return mail.render(
        "subscription_cancelled",
        _l("Your %(name)s subscription ends on %(date)s", name=name, date=ends_on)
        if at_period_end
        else _l("Your %(name)s subscription is cancelled", name=name),
        business=customer.business,
        customer=customer,
        name=name,
        at_period_end=at_period_end,
        previous_status=message.params["previous_status"],
        ends_on=ends_on,
        voided=formatting.money(message.params["voided"], subscription.currency, locale)
        if message.params["voided"]
        else None,
    )


@mail.composer("cancellation_undone")
def _compose_undone(message: OutboxMessage) -> mail.Composed | None:
    return compose_renewal(
        message,
        "cancellation_undone",
        lambda name: _l("Your %(name)s subscription continues", name=name),
    )


def compose_renewal(
    message: OutboxMessage, template: str, subject: Callable[[str], Any]
) -> mail.Composed | None:
    """Render a mail saying when a subscription renews and for how much.

    ``message.params`` names the ``subscription_id``, its ``customer_id`` and
    ``renews_at``; ``subject`` makes the subject from the subscription's name.
    """
    subscription = _subscription_of(message)
    if subscription is None:
        return None
    customer = subscription.customer
    locale = formatting.locale_of(customer)
    name = subscription_name(subscription)
    return mail.render(
        template,
        subject(name),
        business=customer.business,
        customer=customer,
        name=name,
        renews_on=formatting.date(
            datetime.fromisoformat(message.params["renews_at"]), locale, "long"
        ),
        price=formatting.money(subscription.amount, subscription.currency, locale),
        period=lazy_period(subscription.interval, subscription.interval_count),
    )


def _subscription_of(message: OutboxMessage) -> Subscription | None:
    subscription = db_session().get(Subscription, message.params["subscription_id"])
    if subscription is None or subscription.customer_id != message.params["customer_id"]:
        return None
    return subscription
