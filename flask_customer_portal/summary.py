"""What a customer sees first: their plans, what needs attention, their latest invoices."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, func, select

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
    #: Open invoices the customer can pay from their page (not an on-hold subscription's dues).
    invoices_to_pay: list[Invoice]
    latest_invoices: list[Invoice]
    license_keys: int


def account_summary(customer: Customer, *, invoices: int = 5) -> AccountSummary:
    """Return the overview of ``customer``'s account in a fixed number of queries."""
    session = portal.session
    mine = {"customer_id": customer.id}
    subscriptions = list(session.scalars(_CURRENT_SUBSCRIPTIONS, mine))
    on_hold = [s for s in subscriptions if s.status == "on_hold"]
    return AccountSummary(
        subscriptions=subscriptions,
        dues=list(dues_of(on_hold).values()) if on_hold else [],
        cancelling=[s for s in subscriptions if s.cancel_at_period_end],
        invoices_to_pay=[
            invoice
            for invoice in session.scalars(_OPEN_INVOICES, mine)
            if invoice.subscription_id not in {s.id for s in on_hold}
        ],
        latest_invoices=list(session.scalars(_LATEST_INVOICES, {**mine, "limit": invoices})),
        license_keys=int(session.scalar(_LICENSE_KEYS, mine) or 0),
    )


# The overview's statements, built once: the customer and the count are bound when they run.
_CURRENT_SUBSCRIPTIONS = (
    select(Subscription)
    .where(
        Subscription.customer_id == bindparam("customer_id"),
        Subscription.status.in_(CURRENT_STATUSES),
    )
    .order_by(Subscription.created_at, Subscription.id)
)
_LATEST_INVOICES = (
    select(Invoice)
    .where(Invoice.customer_id == bindparam("customer_id"))
    .order_by(Invoice.issued_at.desc(), Invoice.id.desc())
    .limit(bindparam("limit"))
)
_OPEN_INVOICES = (
    select(Invoice)
    .where(Invoice.customer_id == bindparam("customer_id"), Invoice.status == "open")
    .order_by(Invoice.issued_at, Invoice.id)
)
_LICENSE_KEYS = (
    select(func.count())
    .select_from(LicenseKey)
    .where(LicenseKey.customer_id == bindparam("customer_id"))
)
