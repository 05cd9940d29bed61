"""The merchant's plan and quantity changes: the processor billed them, the portal records them.

A change takes effect at once and keeps the current period and the next
billing date; whatever the processor charged or credited for it is recorded
with the billing calls (:func:`~.billing.issue_invoice`,
:func:`~.billing.record_payment`). The currency of a subscription never
changes. Who commits: both calls commit their change, then send
:data:`~.signals.subscription_changed`.
"""

from __future__ import annotations

from typing import Any

from . import signals
from . import validation as v
from .errors import InvalidTransition, ValidationError
from .models import CURRENT_STATUSES, Subscription
from .proxies import unit_of_work
from .subscriptions import change, plan_terms

#: The name each term has in ``changes`` and as an argument, by its column.
_ARGUMENTS = {"price_amount": "price"}


def change_plan(
    subscription: Subscription,
    *,
    plan: str | None,
    price: int,
    product: str | None = None,
    interval: str | None = None,
    interval_count: int | None = None,
    quantity: int | None = None,
) -> Subscription:
    """Move a current subscription to another plan; commit; return it.

    ``product``, ``interval``, ``interval_count`` and ``quantity`` keep their
    values unless given. A call that changes nothing writes and sends nothing.
    A subscription on a catalogue price is on none afterwards (``changes``
    names ``price_id``).

    :param plan: the new plan's name (``None`` or ``""``: the product alone).
    :param price: the price of one unit for one period, in minor units, in the
        subscription's currency; the subscription's amount is price × quantity.
    :raises ValidationError: a term is malformed, or the subscription has
        ended (code ``"not_current"``).
    """
    terms = plan_terms(
        product=subscription.product if product is None else product,
        plan=plan,
        price=price,
        interval=subscription.interval if interval is None else interval,
        interval_count=subscription.interval_count if interval_count is None else interval_count,
        quantity=subscription.quantity if quantity is None else quantity,
    )
    # Terms given by hand are no catalogue price's: it is offered no switches from one.
    return _apply(subscription, {**terms, "price_id": None})


def change_quantity(subscription: Subscription, quantity: int) -> Subscription:
    """Change how many units of its plan a current subscription has; commit; return it.

    The price per unit stays, so the amount follows the quantity. Changing to
    the quantity it has writes and sends nothing.

    :raises ValidationError: ``quantity`` is not a whole number of at least 1,
        or the subscription has ended (code ``"not_current"``).
    """
    return _apply(subscription, {"quantity": v.count("quantity", quantity)})


def _apply(subscription: Subscription, terms: dict[str, Any]) -> Subscription:
    if subscription.status not in CURRENT_STATUSES:
        raise _ended()
    changes = {
        _ARGUMENTS.get(column, column): (getattr(subscription, column), value)
        for column, value in terms.items()
        if getattr(subscription, column) != value
    }
    if not changes:
        return subscription
    try:
        with unit_of_work():
            change(
                subscription,
                subscription.status,
                Subscription.status.in_(CURRENT_STATUSES),
                **terms,
            )
    except InvalidTransition:
        raise _ended() from None
    signals.send(
        signals.subscription_changed,
        customer=subscription.customer,
        subscription=subscription,
        changes=changes,
    )
    return subscription


def _ended() -> ValidationError:
    return ValidationError(
        "subscription", "not_current", "has ended; its plan and quantity cannot change"
    )
