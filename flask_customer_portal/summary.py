"""What a customer sees first: their plans, what needs attention, their latest invoices."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from .billing import Dues, dues_of
from .models import CURRENT_STATUSES, Customer, Invoice, LicenseKey, Subscription
from .proxies import portal


@dataclass(frozen=True)
class AccountSummary:
    """The overview of one customer's account."""

    subscriptions: list[Subscription]
    #: What each on-hold subscription owes.
    dues: list[Dues]
    cancelling: list[Subscription]
    latest_invoices: list[Invoice]
    license_keys: int


def account_summary(customer: Customer, *, invoices: int = 5) -> AccountSummary:
    """Return the overview of ``customer``'s account in a fixed number of queries."""
    session = portal.session
    subscriptions = list(
        session.scalars(
            select(Subscription)
            .filter(
                Subscription.customer_id == customer.id,
                Subscription.status.in_(CURRENT_STATUSES),
            )
            .order_by(Subscription.created_at, Subscription.id)
        )
    )
    on_hold = [s for s in subscriptions if s.status == "on_hold"]
    return AccountSummary(
        subscriptions=subscriptions,
        dues=list(dues_of(on_hold).values()) if on_hold else [],
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
