"""What a customer sees first: their plans, what needs attention, their latest invoices."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from .db import db_session
from .models import Customer, Invoice, LicenseKey, Subscription

CURRENT = ("active", "on_hold", "pending")


@dataclass(frozen=True)
class Dues:
    """What an on-hold subscription owes: the total and how many open invoices."""

    subscription: Subscription
    amount: int
    invoices: int


@dataclass(frozen=True)
class AccountSummary:
    """The overview of one customer's account."""

    subscriptions: list[Subscription]
    dues: list[Dues]
    cancelling: list[Subscription]
    latest_invoices: list[Invoice]
    license_keys: int


def account_summary(customer: Customer, *, invoices: int = 5) -> AccountSummary:
    """Return the overview of ``customer``'s account in a fixed number of queries."""
    session = db_session()
    subscriptions = list(
        session.scalars(
            select(Subscription)
            .filter(Subscription.customer_id == customer.id, Subscription.status.in_(CURRENT))
            .order_by(Subscription.created_at, Subscription.id)
        )
    )
    owed = {
        subscription_id: (int(total), int(count))
        for subscription_id, total, count in session.execute(
            select(Invoice.subscription_id, func.sum(Invoice.total), func.count())
            .where(
                Invoice.customer_id == customer.id,
                Invoice.status == "open",
                Invoice.subscription_id.is_not(None),
            )
            .group_by(Invoice.subscription_id)
        )
    }
    return AccountSummary(
        subscriptions=subscriptions,
        dues=[
            Dues(subscription, *owed.get(subscription.id, (0, 0)))
            for subscription in subscriptions
            if subscription.status == "on_hold"
        ],
        cancelling=[s for s in subscriptions if s.cancel_at_period_end],
        latest_invoices=list(
            session.scalars(
                select(Invoice)
                .filter_by(customer_id=customer.id)
                .order_by(Invoice.issued_at.desc(), Invoice.id.desc())
                .limit(invoices)
            )
        ),
        license_keys=int(
            session.scalar(
                select(func.count()).select_from(LicenseKey).filter_by(customer_id=customer.id)
            )
            or 0
        ),
    )
