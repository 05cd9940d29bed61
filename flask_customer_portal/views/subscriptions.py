"""Pages: the customer's subscriptions, and cancelling them."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for

from .. import formatting
from ..billing import outstanding_dues
from ..cancellation import CANCEL_WAYS, cancel_options, cancel_subscription, undo_cancellation
from ..cancellation_reasons import MAX_COMMENT_LENGTH, reasons_for
from ..errors import InvalidTransition, ValidationError
from ..i18n import N_, current_locale, gettext
from ..models import CURRENT_STATUSES, Customer, Subscription
from ..records import subscription_of
from ..subscriptions import subscription_listing
from .auth import customer_required, signed_in_customer
from .flows import action_done
from .guard import FLASH, or_404
from .messages import error_message

_CHANGED = N_("This subscription changed in the meantime; nothing was done. Here is how it is now.")


def register(blueprint: Blueprint) -> None:
    """Add these pages to ``blueprint``."""
    blueprint.add_url_rule("/subscriptions", "subscriptions", customer_required(subscriptions))
    blueprint.add_url_rule(
        "/subscriptions/<subscription_id>/cancel",
        "cancel_subscription",
        customer_required(cancel),
        methods=["GET", "POST"],
    )
    blueprint.add_url_rule(
        "/subscriptions/<subscription_id>/undo-cancel",
        "undo_cancellation",
        customer_required(undo),
        methods=["POST"],
    )


def customer_subscription(customer: Customer, public_id: str) -> Subscription:
    """Return the customer's subscription a page's URL names, or answer 404 (Z1)."""
    return or_404(subscription_of(customer, public_id))


def subscriptions() -> Any:
    """Current and past subscriptions, with what each costs and when it renews or ends."""
    return _list_page()


def _list_page(error: str | None = None, status: int = 200) -> Any:
    customer = signed_in_customer()
    page = render_template(
        "customer_portal/subscriptions.html",
        customer=customer,
        listing=subscription_listing(customer),
        cancel_options=cancel_options,
        error=error,
    )
    return page, status


def cancel(subscription_id: str) -> Any:
    """GET: what each way of cancelling does. POST: cancel the chosen way."""
    subscription = customer_subscription(signed_in_customer(), subscription_id)
    if request.method == "GET":
        return _cancel_page(subscription)
    when = request.form.get("when")
    if when not in CANCEL_WAYS:
        return _cancel_page(subscription, gettext("Choose when the subscription should end."), 400)
    at_period_end = when == "period_end"
    asks = subscription.customer.business.cancellation_reasons
    try:
        cancel_subscription(
            subscription,
            at_period_end=at_period_end,
            reason=request.form.get("reason") if asks else None,
            comment=request.form.get("comment") if asks else None,
        )
    except ValidationError as error:
        return _cancel_page(subscription, error_message(error), 400, field=error.field)
    except InvalidTransition:
        return _cancel_page(subscription, gettext(_CHANGED), 409)
    if at_period_end:
        ends = formatting.date(subscription.current_period_end, current_locale())
        message = gettext(
            "%(name)s will end on %(date)s. You can undo this until then.",
            name=subscription.name,
            date=ends,
        )
    else:
        message = gettext("%(name)s is cancelled.", name=subscription.name)
    return action_done(request.path, url_for(".subscriptions"), message)


def undo(subscription_id: str) -> Any:
    """Take back a cancellation scheduled for the end of the period."""
    subscription = customer_subscription(signed_in_customer(), subscription_id)
    try:
        undo_cancellation(subscription)
    except ValidationError as error:
        return _list_page(error_message(error), 400)
    except InvalidTransition:
        return _list_page(gettext(_CHANGED), 409)
    flash(gettext("%(name)s will continue; nothing else changed.", name=subscription.name), FLASH)
    return redirect(url_for(".subscriptions"), 303)


def _cancel_page(
    subscription: Subscription, error: str | None = None, status: int = 200, field: str = "when"
) -> Any:
    dues = outstanding_dues(subscription)[0] if subscription.status == "on_hold" else 0
    asks = subscription.customer.business.cancellation_reasons
    page = render_template(
        "customer_portal/cancel_subscription.html",
        subscription=subscription,
        name=subscription.name,
        options=cancel_options(subscription),
        dues=dues,
        ended=subscription.status not in CURRENT_STATUSES,
        error=error,
        error_field=field,
        reasons=reasons_for(subscription.customer.business) if asks else (),
        chosen=request.form.get("reason"),
        comment=request.form.get("comment", ""),
        max_comment=MAX_COMMENT_LENGTH,
    )
    return page, status
