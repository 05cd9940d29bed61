"""Pages: a subscription's payment method, adding a card through the provider, payments.

Changing how a subscription is paid is a sensitive action: every POST of this
flow needs a recent sign-in (T12). The card number is only ever typed on the
provider's page (P1); the portal gets back a token, brand, last four and expiry.
Paying the dues of an on-hold subscription goes through
:func:`~..payments.change_payment_method` with an idempotency key the form
carries, so a double click, a reload or two tabs charge once (P3).
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for

from .. import cards
from ..billing import outstanding_dues
from ..errors import InvalidTransition, ValidationError
from ..i18n import N_, gettext, translated
from ..models import CURRENT_STATUSES, IN_FLIGHT, Payment, PaymentMethod, Subscription
from ..payments import PAYMENT_ID, change_payment_method
from ..providers import ProviderError
from ..records import payment_of
from ..settlement import PaymentOutcome, settle_payment, settle_pending
from ..urls import external_url
from .auth import customer_required, login_url, signed_in_customer, signed_in_recently
from .cards import UNREACHABLE, card_words
from .flows import action_done
from .guard import FLASH, or_404
from .messages import error_message
from .subscriptions import customer_subscription

#: What an idempotency key from the form looks like (``secrets.token_urlsafe``).
FORM_KEY = re.compile(r"[A-Za-z0-9_-]{16,100}")

CHANGED = N_(
    "This subscription changed in the meantime; nothing was charged. Here is how it is now."
)
STALE = N_("This page was out of date, so nothing was done. Check the details and confirm again.")


def register(blueprint: Blueprint) -> None:
    """Add these pages to ``blueprint``."""
    base = "/subscriptions/<subscription_id>/payment-method"
    blueprint.add_url_rule(
        base, "payment_method", customer_required(payment_method), methods=["GET", "POST"]
    )
    blueprint.add_url_rule(
        base + "/new-card", "add_card", customer_required(add_card), methods=["POST"]
    )
    blueprint.add_url_rule(
        base + "/card-added", "card_added", customer_required(card_added), methods=["GET", "POST"]
    )
    blueprint.add_url_rule("/payments/<payment_id>", "payment", customer_required(payment_page))
    blueprint.add_url_rule(
        "/payments/<payment_id>/return", "payment_return", customer_required(payment_return)
    )


def payment_method(subscription_id: str) -> Any:
    """GET: the current method, the saved cards, what confirming costs. POST: confirm."""
    customer = signed_in_customer()
    subscription = customer_subscription(customer, subscription_id)
    if request.method == "GET":
        # The customer's visit settles what a crash or a time-out left unknown (P4).
        in_flight = next(
            (
                outcome.payment
                for outcome in settle_pending(customer)
                if outcome.subscription is not None
                and outcome.subscription.id == subscription.id
                and outcome.status in IN_FLIGHT
            ),
            None,
        )
        return _edit_page(subscription, selected=request.args.get("card"), in_flight=in_flight)
    if not signed_in_recently():
        return _edit_page(subscription, status=403)
    method = cards.get_card(customer, request.form.get("payment_method", ""))
    if method is None:
        return _edit_page(
            subscription, error=gettext("Choose a card, or add a new one."), status=400
        )
    key = request.form.get("idempotency_key", "")
    if not FORM_KEY.fullmatch(key):
        error = gettext(STALE)
        return _edit_page(subscription, error=error, selected=method.public_id, status=400)
    try:
        outcome = change_payment_method(
            subscription,
            method,
            # Scoped to the subscription, so keys of different accounts never meet.
            idempotency_key=f"{subscription.public_id}-{key}",
            return_url=external_url("customer_portal.payment_return", payment_id=PAYMENT_ID),
        )
    except ValidationError as refused:
        error = error_message(refused)
        return _edit_page(subscription, error=error, selected=method.public_id, status=400)
    except InvalidTransition:
        return _edit_page(subscription, error=gettext(CHANGED), status=409)
    return _after(outcome, method, subscription)


def add_card(subscription_id: str) -> Any:
    """Send the customer to the provider's card page; it sends them back to :func:`card_added`."""
    customer = signed_in_customer()
    subscription = customer_subscription(customer, subscription_id)
    if not signed_in_recently():
        return _edit_page(subscription, status=403)
    if subscription.status not in CURRENT_STATUSES:
        return _edit_page(subscription, status=409)  # the page says it has ended
    return_url = external_url("customer_portal.card_added", subscription_id=subscription.public_id)
    try:
        card_page = cards.begin_card_setup(customer, return_url=return_url)
    except ProviderError:
        error = gettext(UNREACHABLE)
        return _edit_page(subscription, error=error, status=503)
    return redirect(card_page, 303)


def card_added(subscription_id: str) -> Any:
    """Back from the provider's card page: GET shows the card, only the POST saves it (C1)."""
    customer = signed_in_customer()
    subscription = customer_subscription(customer, subscription_id)
    params = request.form if request.method == "POST" else request.args
    try:
        if request.method == "GET":
            card = cards.added_card(customer, params)
            return render_template(
                "customer_portal/card_added.html",
                customer=customer,
                subscription=subscription,
                name=subscription.name,
                card=card,
                setup_id=params.get("setup_id", ""),
            )
        if not signed_in_recently():
            return _edit_page(subscription, status=403)
        method = cards.finish_card_setup(customer, params)
    except ValidationError:
        error = gettext("The card was not added. Try adding it again, or choose a saved card.")
        return _edit_page(subscription, error=error, status=400)
    flash(
        gettext("Card %(card)s added. Choose it and confirm to use it.", card=card_words(method)),
        FLASH,
    )
    return redirect(
        url_for(
            "customer_portal.payment_method",
            subscription_id=subscription.public_id,
            card=method.public_id,
        ),
        303,
    )


def payment_page(payment_id: str) -> Any:
    """The outcome of a payment: paid, failed with the reason, waiting for the bank."""
    customer = signed_in_customer()
    payment = or_404(payment_of(customer, payment_id))
    subscription = payment.subscription
    return render_template(
        "customer_portal/payment_result.html",
        customer=customer,
        payment=payment,
        subscription=subscription,
        name=subscription.name if subscription else None,
        method=payment.payment_method,
        invoice=payment.invoice,
    )


def payment_return(payment_id: str) -> Any:
    """Where the provider sends the customer back: learn the final outcome, then show it."""
    payment = or_404(payment_of(signed_in_customer(), payment_id))
    # Only the portal's own attempts are settled; a payment the merchant recorded is as it is.
    if payment.status in IN_FLIGHT and payment.payment_method_id is not None:
        settle_payment(payment)
    return _payment_done(payment)


def _payment_done(payment: Payment) -> Any:
    # Paid: the action a deep link opened is done (on the subscription's payment-method
    # page, whether the bank asked for a confirmation on the way or not).
    result = url_for("customer_portal.payment", payment_id=payment.public_id)
    if payment.status != "succeeded" or payment.subscription is None:
        return redirect(result, 303)
    page = url_for(
        "customer_portal.payment_method", subscription_id=payment.subscription.public_id
    ).removeprefix(request.script_root)
    message = gettext("Paid. %(name)s is active again.", name=payment.subscription.name)
    return action_done(page, result, message, fallback_shows=False)


def _after(outcome: PaymentOutcome, method: PaymentMethod, subscription: Subscription) -> Any:
    if outcome.status == "updated":
        message = gettext(
            "%(name)s will now be charged to %(card)s.",
            name=subscription.name,
            card=card_words(method),
        )
        return action_done(request.path, url_for("customer_portal.subscriptions"), message)
    if outcome.status == "failed":
        reason = translated(outcome.failure_reason) or gettext("The payment did not go through.")
        error = gettext(
            "The payment did not go through: %(reason)s Nothing was charged, and the "
            "subscription is still on hold. Try again with another card.",
            reason=reason,
        )
        return _edit_page(subscription, error=error, status=400)
    return to_payment(outcome)


def to_payment(outcome: PaymentOutcome) -> Any:
    """Send the customer on after a charge: to the bank's page, or to the payment's page."""
    if outcome.status == "requires_action" and outcome.action_url:
        return redirect(outcome.action_url, 303)
    assert outcome.payment is not None
    return _payment_done(outcome.payment)


def _edit_page(
    subscription: Subscription,
    *,
    error: str | None = None,
    selected: str | None = None,
    in_flight: Payment | None = None,
    status: int = 200,
) -> Any:
    customer = subscription.customer
    saved = cards.list_payment_methods(customer)
    current = subscription.payment_method
    if selected not in {card.public_id for card in saved}:
        default = next((card for card in saved if card.is_default), None)
        chosen = current or default or (saved[0] if saved else None)
        selected = chosen.public_id if chosen else None
    dues, invoices = outstanding_dues(subscription) if subscription.status == "on_hold" else (0, [])
    page = render_template(
        "customer_portal/payment_method.html",
        customer=customer,
        subscription=subscription,
        name=subscription.name,
        changeable=subscription.status in CURRENT_STATUSES,
        cards=saved,
        current=current,
        selected=selected,
        dues=dues,
        open_invoices=len(invoices),
        in_flight=in_flight,
        idempotency_key=secrets.token_urlsafe(32),
        recent=signed_in_recently(),
        login_link=login_url(customer.business.public_id, customer.mode),
        error=error,
    )
    return page, status
