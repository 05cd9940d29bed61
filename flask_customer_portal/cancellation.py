"""Cancelling a subscription, at the end of its period or at once, and taking it back.

Each function commits as one unit, queues its email and sends its signal,
whether the customer's page or the merchant's code calls it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update

from . import emails, signals
from . import validation as v
from .billing import void_dues
from .cancellation_reasons import checked_reason
from .db import utcnow
from .errors import ValidationError
from .models import CURRENT_STATUSES, Subscription
from .proxies import unit_of_work, update_rows
from .settlement import close_attempts
from .subscriptions import change, transition

#: The ways of cancelling: at the end of the paid period, or at once.
CANCEL_WAYS = ("period_end", "now")


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


def cancel_subscription(
    subscription: Subscription,
    *,
    at_period_end: bool,
    offered_only: bool = True,
    reason: str | None = None,
    comment: str | None = None,
) -> Subscription:
    """Cancel ``subscription`` the way the customer chose; queue the email; commit.

    At the end of the period (active subscriptions only): the status stays
    ``active`` until ``current_period_end``; ``cancel_at_period_end`` is set,
    ``cancelled_at`` is now and ``next_billing_at`` is cleared, so it is never
    charged again. ``ended_at`` stays empty until :func:`end_due_cancellations`
    ends it; :func:`undo_cancellation` takes it back until then.

    Now: the subscription becomes ``cancelled`` with ``cancelled_at`` and
    ``ended_at`` now, and its open invoices (the dues of an on-hold plan, the
    first invoice of a pending one) are voided, so nothing is shown as owed
    for a plan that has ended, and a payment of them still waiting for the
    customer's bank is closed at the provider. Nothing is refunded.

    The reason and comment, when given, are kept in ``cancellation_reason`` and
    ``cancellation_comment`` (a later cancellation without them keeps the ones
    there). Sends :data:`~.signals.subscription_cancelled` with them.

    :param offered_only: ``False`` records a cancellation made elsewhere (at
        the payment processor) whatever ways its business offers its customers;
        it needs no reason.
    :param reason: why the customer cancels: a code of the business's list
        (:func:`~.cancellation_reasons.reasons_for`); required when its
        ``cancellation_reasons`` switch is on, unless ``offered_only`` is ``False``.
    :param comment: what the customer added, plain text of at most 500 characters
        (stripped; empty is none).
    :raises ValidationError: it has already ended (code ``"already_cancelled"``,
        ``"already_expired"`` or ``"already_failed"``), or this way is not offered
        for it now (see :func:`cancel_options`; code ``"already_scheduled"``,
        ``"no_paid_period"``, ``"period_end_not_offered"`` or ``"now_not_offered"``),
        or the reason is missing (``"reason_required"``) or not of the list
        (``"invalid_reason"``), or the comment is not acceptable text (field ``"comment"``).
    :raises InvalidTransition: it changed meanwhile (another request won).
    """
    way = "period_end" if at_period_end else "now"
    if subscription.status not in CURRENT_STATUSES:
        raise ValidationError(
            "subscription",
            f"already_{subscription.status}",
            f"this subscription has already ended ({subscription.status})",
        )
    if offered_only and way not in cancel_options(subscription):
        raise _not_offered(subscription, way)
    business = subscription.customer.business
    reason, comment = checked_reason(
        business, reason, comment, required=offered_only and business.cancellation_reasons
    )
    feedback = (
        {"cancellation_reason": reason, "cancellation_comment": comment}
        if reason or comment
        else {}
    )
    now, previous_status, voided = utcnow(), subscription.status, 0
    with unit_of_work():
        if at_period_end:
            change(
                subscription,
                "cancelled",
                Subscription.status == "active",
                Subscription.cancel_at_period_end.is_(False),
                cancel_at_period_end=True,
                cancelled_at=now,
                next_billing_at=None,
                **feedback,
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
                **feedback,
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
        reason=reason,
        comment=comment,
    )
    if previous_status == "on_hold":
        # A payment of its dues may be waiting for the customer's bank: close it.
        close_attempts(subscription)
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

    The subscription renews again at the end of its period. The reason and
    comment given when cancelling are cleared with the cancellation: they no
    longer stand (they were sent in :data:`~.signals.subscription_cancelled`).
    Sends :data:`~.signals.cancellation_undone`.

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
        change(
            subscription,
            "active",
            Subscription.status == "active",
            Subscription.cancel_at_period_end.is_(True),
            Subscription.current_period_end > now,
            cancel_at_period_end=False,
            cancelled_at=None,
            cancellation_reason=None,
            cancellation_comment=None,
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
