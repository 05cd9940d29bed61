"""Pages: the customer's subscriptions, and cancelling them."""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)

from .. import formatting, signals
from ..billing import outstanding_dues
from ..errors import InvalidTransition, ValidationError
from ..i18n import N_, current_locale, gettext, translated
from ..models import Customer, Subscription
from ..subscriptions import (
    CANCEL_WAYS,
    cancel_options,
    cancel_subscription,
    get_subscription,
    list_subscriptions,
    subscription_name,
    undo_cancellation,
)
from . import customer_required, signed_in_customer

#: The category of the portal's flashed messages, so a host's own stay apart.
FLASH = "customer_portal"

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


def subscriptions() -> Any:
    """Current and past subscriptions, with what each costs and when it renews or ends."""
    return _list_page()


def _list_page(error: str | None = None, status: int = 200) -> Any:
    customer = signed_in_customer()
    listing = list_subscriptions(customer)
    page = render_template(
        "customer_portal/subscriptions.html",
        customer=customer,
        listing=listing,
        cancel_options=cancel_options,
        error=error,
    )
    return page, status


def cancel(subscription_id: str) -> Any:
    """GET: what each way of cancelling does. POST: cancel the chosen way."""
    customer = signed_in_customer()
    subscription = _load(customer, subscription_id)
    if request.method == "GET":
        return _cancel_page(subscription)
    when = request.form.get("when")
    if when not in CANCEL_WAYS:
        return _cancel_page(subscription, gettext("Choose when the subscription should end."), 400)
    at_period_end = when == "period_end"
    try:
        cancel_subscription(subscription, at_period_end=at_period_end)
    except ValidationError as error:
        return _cancel_page(subscription, translated(error.message), 400)
    except InvalidTransition:
        return _cancel_page(subscription, gettext(_CHANGED), 409)
    signals.subscription_cancelled.send(
        current_app._get_current_object(),  # type: ignore[attr-defined]
        customer=customer,
        subscription=subscription,
        at_period_end=at_period_end,
    )
    name = subscription_name(subscription)
    if at_period_end:
        ends = formatting.date(subscription.current_period_end, current_locale())
        flash(
            gettext(
                "%(name)s will end on %(date)s. You can undo this until then.", name=name, date=ends
            ),
            FLASH,
        )
    else:
        flash(gettext("%(name)s is cancelled.", name=name), FLASH)
    return redirect(url_for(".subscriptions"), 303)


def undo(subscription_id: str) -> Any:
    """Take back a cancellation scheduled for the end of the period."""
    customer = signed_in_customer()
    subscription = _load(customer, subscription_id)
    try:
        undo_cancellation(subscription)
    except ValidationError as error:
        return _list_page(translated(error.message), 400)
    except InvalidTransition:
        return _list_page(gettext(_CHANGED), 409)
    signals.cancellation_undone.send(
        current_app._get_current_object(),  # type: ignore[attr-defined]
        customer=customer,
        subscription=subscription,
    )
    flash(
        gettext(
            "%(name)s will continue; nothing else changed.", name=subscription_name(subscription)
        ),
        FLASH,
    )
    return redirect(url_for(".subscriptions"), 303)


def _load(customer: Customer, public_id: str) -> Subscription:
    subscription = get_subscription(customer, public_id)
    if subscription is None:
        abort(404)
    return subscription


def _cancel_page(subscription: Subscription, error: str | None = None, status: int = 200) -> Any:
    dues = outstanding_dues(subscription)[0] if subscription.status == "on_hold" else 0
    page = render_template(
        "customer_portal/cancel_subscription.html",
        subscription=subscription,
        name=subscription_name(subscription),
        options=cancel_options(subscription),
        dues=dues,
        error=error,
    )
    return page, status
