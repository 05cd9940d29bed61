"""The arithmetic of a change mid-period: what the customer pays or is credited today.

Pure functions of their arguments: no database is read or written, so the
preview a customer sees and the change a confirmation makes are the same
computation. A confirmation computes :func:`preview_change` again at the
accepted preview's ``at`` (refusing a preview too old to honour) and charges
its numbers only if the two previews are equal.

The rule, exactly: a change made at ``at`` leaves ``seconds_left`` whole
seconds (rounded down) of the current period's ``period_seconds``. Every item
that changes gets two proration lines: "Unused time on X", a credit of the old
item's period amount × seconds_left ÷ period_seconds, and "Remaining time on
Y", a charge of the new item's amount likewise. Each line is rounded down to
the minor unit (toward zero), on its own; the amount due today is the sum of
the lines. So a credit never exceeds what was paid for the unused time, no
charge exceeds the time's exact price, and a change undone at the same instant
nets to exactly zero. The current period and the renewal date never move.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from . import validation as v
from .db import utcnow
from .errors import ValidationError
from .i18n import gettext
from .models import Price, Subscription

_SECOND = timedelta(seconds=1)
#: The key of the plan among a subscription's items (add-ons are keyed by price).
_PLAN = "plan"


@dataclass(frozen=True)
class ProrationLine:
    """One line of a change's invoice: a credit (``amount`` < 0) or a charge."""

    #: ``"unused"`` (the credit for the old item) or ``"remaining"`` (the charge for the new).
    kind: str
    #: The item's name, as the customer knows it (``Acme Cloud Pro``).
    name: str
    quantity: int
    #: Signed, in minor units: negative for a credit.
    amount: int

    @property
    def description(self) -> str:
        """The line's text in the current locale."""
        if self.kind == "unused":
            return gettext("Unused time on %(name)s × %(quantity)s", **self._words())
        return gettext("Remaining time on %(name)s × %(quantity)s", **self._words())

    def _words(self) -> dict[str, Any]:
        return {"name": self.name, "quantity": self.quantity}


@dataclass(frozen=True)
class ChangePreview:
    """What a change of plan, quantity or add-ons would do, with every number it charges."""

    subscription: str
    #: The price the plan would be on (its public id), or ``None`` if the plan stays.
    price: str | None
    quantity: int
    #: The add-ons after the change: (price public id, quantity), sorted.
    add_ons: tuple[tuple[str, int], ...]
    currency: str
    at: datetime
    #: ``"upgrade"`` (the period costs more), ``"downgrade"`` (less) or ``"same"``.
    direction: str
    #: ``"now"`` or ``"period_end"`` (a downgrade the business defers).
    takes_effect: str
    effective_at: datetime
    #: Charged today (negative: credited); the sum of ``lines``.
    amount_due: int
    lines: tuple[ProrationLine, ...]
    #: What a period costs now, and after the change, in minor units.
    current_amount: int
    recurring_amount: int
    next_renewal_at: datetime


@dataclass(frozen=True)
class _Item:
    name: str
    unit_amount: int
    quantity: int

    @property
    def amount(self) -> int:
        return self.unit_amount * self.quantity


def share(amount: int, seconds_left: int, period_seconds: int) -> int:
    """Return ``amount`` × ``seconds_left`` ÷ ``period_seconds``, rounded down to the minor unit."""
    return amount * seconds_left // period_seconds


def seconds_left(start: datetime, end: datetime, at: datetime) -> tuple[int, int]:
    """Return the whole seconds left at ``at`` of the period from ``start`` to ``end``, and its
    length in seconds. A moment outside the period is refused (``at``, ``outside_period``)."""
    if not start <= at <= end:
        raise ValidationError("at", "outside_period", "must be within the current period")
    return (end - at) // _SECOND, (end - start) // _SECOND


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


def preview_change(
    subscription: Subscription,
    *,
    price: Price | None = None,
    quantity: int | None = None,
    add_ons: Mapping[Price, int] | None = None,
    at: datetime | None = None,
) -> ChangePreview:
    """Return what moving ``subscription`` to ``price``, ``quantity`` and ``add_ons`` would do.

    Honours its business's switches: ``plan_changes``, ``quantity_changes``
    and ``add_ons`` must be on for that kind of change; ``downgrades_at``
    decides when a change that makes the period cheaper takes effect (at
    period end nothing is charged or credited now); ``proration="none"``
    charges nothing now. Whether the business allows a switch to ``price`` is
    :func:`~.catalogue.switch_options`' question, asked first by the caller.

    :param quantity: the plan's new quantity; its price's seat limits apply.
    :param add_ons: add-on prices and their new quantity (0 removes one);
        add-ons not named stay as they are.
    :param at: the moment of the change (now by default), within the period.
    :raises ValidationError: the change is not allowed or changes nothing.
    """
    when = v.aware("at", at, required=False) or utcnow()
    business = subscription.customer.business
    _check_changeable(subscription)
    before = _items(subscription)
    after = dict(before)
    target = subscription.price
    if price is not None and price is not subscription.price:
        _check_switch(business.plan_changes, "price", "plan_changes", subscription, price)
        if price.add_on:
            raise ValidationError("price", "add_on", "is an add-on, not a plan")
        target = price
    count = subscription.quantity if quantity is None else v.count("quantity", quantity)
    if count != subscription.quantity and not business.quantity_changes:
        raise _off("quantity", "quantity_changes")
    if target is not None:
        check_quantity("quantity", target, count)
    plan = before[_PLAN]
    if target is not subscription.price:
        assert target is not None
        after[_PLAN] = _Item(target.label, target.amount, count)
    else:
        after[_PLAN] = _Item(plan.name, plan.unit_amount, count)
    for add_on, number in (add_ons or {}).items():
        _check_switch(business.add_ons, "add_ons", "add_ons", subscription, add_on)
        if not add_on.add_on:
            raise ValidationError("add_ons", "not_an_add_on", f"{add_on.label!r} is not an add-on")
        if v.count("add_ons", number, minimum=0):
            check_quantity("add_ons", add_on, number)
            after[add_on.public_id] = _Item(add_on.label, add_on.amount, number)
        else:
            after.pop(add_on.public_id, None)
    if after == before:
        raise ValidationError("price", "no_change", "changes nothing")
    return _preview(subscription, target, after, before, when)


def _preview(
    subscription: Subscription,
    target: Price | None,
    after: dict[str, _Item],
    before: dict[str, _Item],
    when: datetime,
) -> ChangePreview:
    business = subscription.customer.business
    start, end = subscription.current_period_start, subscription.current_period_end
    left, period = seconds_left(start, end, when)
    current = sum(item.amount for item in before.values())
    recurring = sum(item.amount for item in after.values())
    direction = "upgrade" if recurring > current else "downgrade" if recurring < current else "same"
    deferred = direction == "downgrade" and business.downgrades_at == "period_end"
    lines: list[ProrationLine] = []
    if not deferred and business.proration == "prorate":
        for key in sorted(before.keys() | after.keys(), key=lambda key: (key != _PLAN, key)):
            old, new = before.get(key), after.get(key)
            if old == new:
                continue
            if old is not None:
                lines.append(
                    ProrationLine(
                        "unused", old.name, old.quantity, -share(old.amount, left, period)
                    )
                )
            if new is not None:
                lines.append(
                    ProrationLine(
                        "remaining", new.name, new.quantity, share(new.amount, left, period)
                    )
                )
    return ChangePreview(
        subscription=subscription.public_id,
        price=None if target is subscription.price or target is None else target.public_id,
        quantity=after[_PLAN].quantity,
        add_ons=tuple(sorted((key, item.quantity) for key, item in after.items() if key != _PLAN)),
        currency=subscription.currency,
        at=when,
        direction=direction,
        takes_effect="period_end" if deferred else "now",
        effective_at=end if deferred else when,
        amount_due=sum(line.amount for line in lines),
        lines=tuple(lines),
        current_amount=current,
        recurring_amount=recurring,
        next_renewal_at=end,
    )


def _items(subscription: Subscription) -> dict[str, _Item]:
    items = {_PLAN: _Item(subscription.name, subscription.price_amount, subscription.quantity)}
    for add_on in subscription.add_ons:
        items[add_on.price.public_id] = _Item(
            add_on.price.label, add_on.price.amount, add_on.quantity
        )
    return items


def _check_changeable(subscription: Subscription) -> None:
    if subscription.status != "active":
        raise ValidationError("subscription", "not_active", "only an active subscription changes")
    if subscription.pending_at is not None:
        raise ValidationError(
            "subscription", "change_pending", "has a change scheduled; undo it first"
        )


def _check_switch(
    on: bool, field: str, switch: str, subscription: Subscription, price: Price
) -> None:
    if not on:
        raise _off(field, switch)
    if (price.business_id, price.mode) != (subscription.business_id, subscription.mode):
        raise ValidationError(field, "not_found", "is not a price of the subscription's business")
    if not price.active or not price.product.active:
        raise ValidationError(field, "archived", f"{price.label!r} is no longer offered")
    if price.currency != subscription.currency:
        raise ValidationError(
            field,
            "currency_mismatch",
            f"is in {price.currency}, the subscription in {subscription.currency}",
        )
    if (price.interval, price.interval_count) != (
        subscription.interval,
        subscription.interval_count,
    ):
        raise ValidationError(
            field, "interval_mismatch", "bills at another interval than the subscription"
        )


def check_quantity(field: str, price: Price, quantity: int) -> None:
    """Refuse a ``quantity`` outside ``price``'s seat limits (``quantity_not_allowed``)."""
    if not price.allows_quantity(quantity):
        raise ValidationError(
            field,
            "quantity_not_allowed",
            f"{quantity} is outside the seat limits of {price.label!r}",
            minimum=price.seats_minimum,
            maximum=price.seats_maximum,
            step=price.seats_step,
        )


def _off(field: str, switch: str) -> ValidationError:
    return ValidationError(field, f"{switch}_off", f"the business does not offer {switch}")
