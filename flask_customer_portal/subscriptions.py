"""Subscriptions: starting them, and the one function that changes their status."""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta

from sqlalchemy import update

from . import validation as v
from .db import db_session, unit_of_work, utcnow
from .errors import InvalidTransition
from .models import INTERVALS, Customer, Subscription

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
