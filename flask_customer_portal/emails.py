"""Every email the portal sends: the ``queue_*`` functions the domain calls, and their composers.

A ``queue_*`` function adds a row to the outbox in the caller's transaction
(it does not commit); the message is rendered when it is sent, from what the
database says then, in the customer's language (their saved choice, else their
business's). A sign-in link in a message is minted at that moment, so no
secret ever waits in the outbox. Each message is a ``.txt`` and ``.html`` pair
under ``templates/customer_portal/email/``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from flask import render_template
from flask_babel import force_locale

from . import i18n, outbox
from .config import config_value
from .formatting import date, locale_of, money
from .i18n import lazy_gettext as _l
from .i18n import lazy_period
from .links import new_link, revoke_links
from .mail import Email
from .models import Business, Customer, OutboxMessage, Payment, Subscription
from .proxies import portal
from .records import find_customer

#: The composer of each kind of message (see :func:`.outbox.send_due`).
COMPOSERS: dict[str, outbox.Composer] = {}


def _composer(kind: str) -> Callable[[outbox.Composer], outbox.Composer]:
    def register(function: outbox.Composer) -> outbox.Composer:
        COMPOSERS[kind] = function
        return function

    return register


def send_queued(limit: int = 100) -> tuple[int, int]:
    """Send the queued mail that is due; return how many were sent and how many failed.

    The mail thread and ``flask portal send-mail`` call this; see :func:`.outbox.send_due`.
    """
    return outbox.send_due(COMPOSERS, limit)


def render(template: str, subject: Any, customer: Customer, **context: Any) -> Email:
    """Render ``customer_portal/email/<template>.txt`` and ``.html`` into an email to ``customer``.

    The email is in the customer's language (:func:`~.formatting.locale_of`):
    give the ``subject`` and any words as lazy strings (``i18n.lazy_gettext``)
    so they are translated into it here. The templates also get ``customer``,
    their ``business`` and ``locale``.
    """
    with force_locale(locale_of(customer)):
        context = {
            **i18n.template_helpers(),
            "locale": i18n.current_locale(),
            "customer": customer,
            "business": customer.business,
            **context,
        }
        return Email(
            subject=str(subject),
            text=render_template(f"customer_portal/email/{template}.txt", **context),
            html=render_template(f"customer_portal/email/{template}.html", **context),
        )


def _queue(customer: Customer, kind: str, **params: Any) -> None:
    outbox.queue(customer.email, kind, customer_id=customer.id, **params)


def _customer_of(message: OutboxMessage) -> Customer | None:
    # None when the customer is gone: the message is dropped.
    return portal.session.get(Customer, message.params["customer_id"])


# -- Getting in ------------------------------------------------------------------------


def queue_login_link(
    business: Business, mode: str, email: str, *, next_path: str | None = None
) -> None:
    """Queue a sign-in link to ``email``, if it belongs to a customer when it is sent.

    The same work whether the email is known or not (T8): who the customer is,
    is looked up when the mail is sent, off the request. The link opens
    ``next_path`` (a checked portal path) after signing in.
    """
    outbox.queue(email, "login_link", business_id=business.id, mode=mode, next_path=next_path)


@_composer("login_link")
def _login_link(message: OutboxMessage) -> Email | None:
    business = portal.session.get(Business, message.params["business_id"])
    customer = business and find_customer(business, message.recipient, mode=message.params["mode"])
    if not customer:
        return None
    return render(
        "login_link",
        _l("Your sign-in link for %(business)s", business=customer.business.name),
        customer,
        link=new_link(customer, "email_login", next_path=message.params.get("next_path")),
        minutes=config_value("LOGIN_LINK_TTL") // 60,
    )


def queue_portal_link(
    customer: Customer, *, return_url: str | None, next_path: str | None = None
) -> None:
    """Queue a link straight into ``customer``'s portal (for ``create_portal_session``)."""
    _queue(customer, "portal_link", return_url=return_url, next_path=next_path)


@_composer("portal_link")
def _portal_link(message: OutboxMessage) -> Email | None:
    customer = _customer_of(message)
    if customer is None:
        return None
    return render(
        "portal_link",
        _l("Your %(business)s account", business=customer.business.name),
        customer,
        link=new_link(
            customer,
            "portal_session",
            return_url=message.params.get("return_url"),
            next_path=message.params.get("next_path"),
        ),
    )


def queue_email_change(customer: Customer, new_email: str) -> None:
    """Queue the confirmation link to ``new_email`` and the notice to the current address (Z2)."""
    outbox.queue(new_email, "email_change", customer_id=customer.id, new_email=new_email)
    _queue(customer, "email_change_notice", new_email=new_email)


@_composer("email_change")
def _email_change(message: OutboxMessage) -> Email | None:
    customer = _customer_of(message)
    new_email = message.params["new_email"]
    if customer is None or customer.email == new_email:
        return None
    # Two requests queued before either was sent: the one sent last is the one that counts.
    revoke_links(customer, purpose="email_change")
    return render(
        "email_change",
        _l("Confirm your new email address for %(business)s", business=customer.business.name),
        customer,
        new_email=new_email,
        link=new_link(customer, "email_change", new_email=new_email),
        minutes=config_value("LOGIN_LINK_TTL") // 60,
    )


@_composer("email_change_notice")
def _email_change_notice(message: OutboxMessage) -> Email | None:
    customer = _customer_of(message)
    if customer is None:
        return None
    return render(
        "email_change_notice",
        _l("Your %(business)s email address is changing", business=customer.business.name),
        customer,
        old_email=message.recipient,
        new_email=message.params["new_email"],
    )


# -- Subscriptions -----------------------------------------------------------------------


def queue_subscription_cancelled(
    subscription: Subscription,
    *,
    at_period_end: bool,
    previous_status: str,
    ends_at: datetime,
    voided: int,
) -> None:
    """Queue the mail that confirms a cancellation: when it ends, and what was voided."""
    _queue(
        subscription.customer,
        "subscription_cancelled",
        subscription_id=subscription.id,
        at_period_end=at_period_end,
        previous_status=previous_status,
        ends_at=ends_at,
        voided=voided,
    )


@_composer("subscription_cancelled")
def _subscription_cancelled(message: OutboxMessage) -> Email | None:
    subscription = _subscription_of(message)
    if subscription is None:
        return None
    customer = subscription.customer
    locale = locale_of(customer)
    ends_on = date(datetime.fromisoformat(message.params["ends_at"]), locale, "long")
    at_period_end = bool(message.params["at_period_end"])
    voided = message.params["voided"]
    return render(
        "subscription_cancelled",
        _l("Your %(name)s subscription ends on %(date)s", name=subscription.name, date=ends_on)
        if at_period_end
        else _l("Your %(name)s subscription is cancelled", name=subscription.name),
        customer,
        name=subscription.name,
        at_period_end=at_period_end,
        previous_status=message.params["previous_status"],
        ends_on=ends_on,
        voided=money(voided, subscription.currency, locale) if voided else None,
    )


def queue_cancellation_undone(subscription: Subscription) -> None:
    """Queue the mail that says the subscription continues, and when it renews."""
    _queue_renewal(subscription, "cancellation_undone", subscription.current_period_end)


def queue_subscription_reactivated(subscription: Subscription, *, renews_at: datetime) -> None:
    """Queue the mail that says an on-hold subscription is active again."""
    _queue_renewal(subscription, "subscription_reactivated", renews_at)


def _queue_renewal(subscription: Subscription, kind: str, renews_at: datetime) -> None:
    _queue(subscription.customer, kind, subscription_id=subscription.id, renews_at=renews_at)


@_composer("cancellation_undone")
def _cancellation_undone(message: OutboxMessage) -> Email | None:
    return _renewal(
        message,
        "cancellation_undone",
        lambda name: _l("Your %(name)s subscription continues", name=name),
    )


@_composer("subscription_reactivated")
def _subscription_reactivated(message: OutboxMessage) -> Email | None:
    return _renewal(
        message,
        "subscription_reactivated",
        lambda name: _l("Your %(name)s subscription is active again", name=name),
    )


def _renewal(message: OutboxMessage, template: str, subject: Callable[[str], Any]) -> Email | None:
    # Says when the subscription renews, and for how much.
    subscription = _subscription_of(message)
    if subscription is None:
        return None
    customer = subscription.customer
    locale = locale_of(customer)
    renews_at = datetime.fromisoformat(message.params["renews_at"])
    return render(
        template,
        subject(subscription.name),
        customer,
        name=subscription.name,
        renews_on=date(renews_at, locale, "long"),
        price=money(subscription.amount, subscription.currency, locale),
        period=lazy_period(subscription.interval, subscription.interval_count),
    )


def _subscription_of(message: OutboxMessage) -> Subscription | None:
    subscription = portal.session.get(Subscription, message.params["subscription_id"])
    if subscription is None or subscription.customer_id != message.params["customer_id"]:
        return None
    return subscription


# -- Payments --------------------------------------------------------------------------


def queue_payment_succeeded(payment: Payment) -> None:
    """Queue the receipt of a successful payment."""
    _queue(payment.customer, "payment_succeeded", payment_id=payment.id)


@_composer("payment_succeeded")
def _payment_succeeded(message: OutboxMessage) -> Email | None:
    payment = portal.session.get(Payment, message.params["payment_id"])
    if payment is None or payment.customer_id != message.params["customer_id"]:
        return None
    subscription, customer = payment.subscription, payment.customer
    locale = locale_of(customer)
    amount = money(payment.amount, payment.currency, locale)
    return render(
        "payment_succeeded",
        _l("Payment received: %(amount)s", amount=amount),
        customer,
        name=subscription.name if subscription else None,
        amount=amount,
        invoice=payment.invoice,
        card=payment.payment_method,
        paid_on=date(payment.updated_at, locale, "long"),
    )
