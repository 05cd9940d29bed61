"""The merchant's lists of a customer's records, with the order every list of them keeps.

``Customer.subscriptions``, ``Customer.invoices`` and ``Customer.payment_methods``
give the same records in the same order, loaded when first read; these calls
filter them in the database.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select

from . import validation as v
from .models import INVOICE_STATUSES, SUBSCRIPTION_STATUSES, Customer, Invoice, Subscription
from .models.billing import INVOICE_ORDER, SUBSCRIPTION_ORDER
from .proxies import portal


def list_subscriptions(
    customer: Customer, *, status: str | Iterable[str] | None = None
) -> list[Subscription]:
    """Return ``customer``'s subscriptions, the newest first.

    :param status: only those in this status, or in one of these
        (``("active", "on_hold")``; ``models.CURRENT_STATUSES`` for those that have not ended).
    :raises ValidationError: an unknown status (code ``"invalid_choice"``).
    """
    query = select(Subscription).filter_by(customer_id=customer.id).order_by(*SUBSCRIPTION_ORDER)
    if status is not None:
        query = query.where(Subscription.status.in_(_statuses(status, SUBSCRIPTION_STATUSES)))
    return list(portal.session.scalars(query))


def list_invoices(
    customer: Customer, *, status: str | Iterable[str] | None = None
) -> list[Invoice]:
    """Return ``customer``'s invoices, the newest issued first.

    :param status: only those in this status, or in one of these (``("open", "paid")``).
    :raises ValidationError: an unknown status (code ``"invalid_choice"``).
    """
    query = select(Invoice).filter_by(customer_id=customer.id).order_by(*INVOICE_ORDER)
    if status is not None:
        query = query.where(Invoice.status.in_(_statuses(status, INVOICE_STATUSES)))
    return list(portal.session.scalars(query))


def _statuses(value: object, allowed: tuple[str, ...]) -> list[str]:
    """Return one status, or an iterable of them, as a list of ``allowed`` ones."""
    wanted = [value] if isinstance(value, str) or not isinstance(value, Iterable) else value
    return [v.choice("status", status, allowed) for status in wanted]
