"""Saved cards: the merchant's calls, a card added on the provider's page, a customer's cards.

The card number is only ever typed on the provider's page; the portal keeps
what :class:`~.providers.SavedCard` carries: the provider's token, the brand,
the last four digits and the expiry (P1). A customer with saved cards has one
default card.

Who commits: every function that writes commits its own change, then sends its
signals.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from . import signals
from . import validation as v
from .errors import ValidationError
from .models import CURRENT_STATUSES, IN_FLIGHT, Customer, Payment, PaymentMethod, Subscription
from .models.billing import PAYMENT_METHOD_ORDER
from .provider_customers import customer_ref
from .providers.base import ProviderError, SavedCard
from .proxies import portal, provider_for, unit_of_work, update_rows
from .subscriptions import set_payment_method

_LAST4 = re.compile(r"\d{4}")
#: A brand as providers name it: ``visa``, ``mastercard``, ``amex``, ``diners_club``.
_BRAND = re.compile(r"[a-z0-9][a-z0-9 _-]*")
#: How many times a save is tried when a request racing it saved the same card first.
_ATTEMPTS = 3


def list_payment_methods(customer: Customer) -> list[PaymentMethod]:
    """Return ``customer``'s saved cards: the default first, then the newest first."""
    return list(
        portal.session.scalars(
            select(PaymentMethod).filter_by(customer_id=customer.id).order_by(*PAYMENT_METHOD_ORDER)
        )
    )


def get_card(customer: Customer, public_id: str) -> PaymentMethod | None:
    """Return ``customer``'s saved card with this public id, or ``None`` (Z1)."""
    return portal.session.scalar(
        select(PaymentMethod).filter_by(customer_id=customer.id, public_id=public_id)
    )


def save_payment_method(
    customer: Customer,
    *,
    provider_token: str,
    brand: str,
    last4: str,
    exp_month: int,
    exp_year: int,
    default: bool = True,
) -> PaymentMethod:
    """Save a card ``customer`` has on file at the merchant's processor; commit; return it.

    Only the processor's token, the brand, the last four digits and the expiry
    are kept (P1). Saving the same ``provider_token`` again brings the saved
    card up to date (a new expiry) and returns it: one row per token.

    With ``default`` (the default), the card becomes the customer's default,
    the previous default stays saved, and each of the customer's current
    subscriptions without a card renews with it. Without, the current default
    stays; the customer's first card is their default either way.

    Sends :data:`~.signals.payment_method_saved` if anything changed, and
    :data:`~.signals.payment_method_updated` for each subscription given the card.

    :param brand: as the processor names it (``"visa"``, ``"mastercard"``); kept lower-cased.
    :raises ValidationError: a field is malformed, or holds a card number
        (code ``"card_number"``).
    """
    fields = {
        "provider_token": v.required_text("provider_token", provider_token, max_length=255),
        "brand": _brand(brand),
        "last4": _last4(last4),
        "exp_month": _month(exp_month),
        "exp_year": _year(exp_year),
    }
    default = v.boolean("default", default)
    attempts = _ATTEMPTS
    while True:
        attempts -= 1
        try:
            with unit_of_work():
                method, changed, attached = _store_card(customer, fields, default)
            break
        except IntegrityError:
            # A request racing this one saved the card, or another default, first: look again.
            if not attempts:
                raise
    if changed:
        signals.send(signals.payment_method_saved, customer=customer, payment_method=method)
    for subscription in attached:
        _send_updated(subscription, method)
    return method


def save_card(customer: Customer, card: SavedCard) -> PaymentMethod:
    """Save the card ``customer`` added on the provider's page; commit; return it.

    Saved as :func:`save_payment_method` saves any card, but not as the
    default (unless it is the customer's first) and given to no subscription:
    the payment-method page attaches it to the one the customer is editing.
    """
    return save_payment_method(
        customer,
        provider_token=card.token,
        brand=card.brand,
        last4=card.last4,
        exp_month=card.exp_month,
        exp_year=card.exp_year,
        default=False,
    )


def _store_card(
    customer: Customer, fields: dict[str, Any], default: bool
) -> tuple[PaymentMethod, bool, list[Subscription]]:
    # The card saved (in the session, not committed), whether it changed, and
    # the subscriptions that took it.
    session = portal.session
    method = session.scalar(
        select(PaymentMethod).filter_by(
            customer_id=customer.id, provider_token=fields["provider_token"]
        )
    )
    has_default = session.scalar(
        select(PaymentMethod.id).filter_by(customer_id=customer.id, is_default=True)
    )
    make_default = default or has_default is None
    if make_default and not (method is not None and method.is_default):
        # One default per customer (a unique index): the old one gives way first.
        update_rows(
            update(PaymentMethod)
            .where(PaymentMethod.customer_id == customer.id, PaymentMethod.is_default)
            .values(is_default=False)
        )
    if method is None:
        method = PaymentMethod(customer_id=customer.id, is_default=make_default, **fields)
        session.add(method)
        changed = True
    else:
        changes = {name: value for name, value in fields.items() if getattr(method, name) != value}
        if make_default and not method.is_default:
            changes["is_default"] = True
        for name, value in changes.items():
            setattr(method, name, value)
        changed = bool(changes)
    session.flush()
    if not default:
        return method, changed, []
    without = session.scalars(
        select(Subscription).where(
            Subscription.customer_id == customer.id,
            Subscription.status.in_(CURRENT_STATUSES),
            Subscription.payment_method_id.is_(None),
        )
    )
    unset = Subscription.payment_method_id.is_(None)
    return method, changed, [s for s in without if set_payment_method(s, method, unset)]


def set_default_payment_method(payment_method: PaymentMethod) -> PaymentMethod:
    """Make ``payment_method`` its customer's default card; commit; return it.

    The default card is listed first and preselected when the customer pays;
    no subscription changes card here (:func:`attach_payment_method` does).
    The previous default stays saved. Sends
    :data:`~.signals.payment_method_saved` unless the card was the default already.
    """
    attempts = _ATTEMPTS
    while True:
        attempts -= 1
        try:
            with unit_of_work():
                # One default per customer (a unique index): the old one gives way first.
                update_rows(
                    update(PaymentMethod)
                    .where(
                        PaymentMethod.customer_id == payment_method.customer_id,
                        PaymentMethod.is_default,
                        PaymentMethod.id != payment_method.id,
                    )
                    .values(is_default=False)
                )
                changed = update_rows(
                    update(PaymentMethod)
                    .where(
                        PaymentMethod.id == payment_method.id, PaymentMethod.is_default.is_(False)
                    )
                    .values(is_default=True)
                )
            break
        except IntegrityError:
            # Another request made another card the default first: this one wins after it.
            if not attempts:
                raise
    portal.session.expire(payment_method, ["is_default"])
    if changed:
        signals.send(
            signals.payment_method_saved,
            customer=payment_method.customer,
            payment_method=payment_method,
        )
    return payment_method


def check_owner(subscription: Subscription, method: PaymentMethod) -> None:
    """Refuse ``method`` for ``subscription`` unless it is the same customer's card.

    :raises ValidationError: code ``"other_customer"``.
    """
    if method.customer_id != subscription.customer_id:
        raise ValidationError(
            "payment_method", "other_customer", "is not one of this customer's cards"
        )


def attach_payment_method(
    subscription: Subscription, payment_method: PaymentMethod
) -> Subscription:
    """Make ``payment_method`` the card ``subscription`` renews with; commit; return it.

    Nothing is charged: an on-hold subscription keeps its dues
    (:func:`~.payments.reactivate_subscription` pays them). Sends
    :data:`~.signals.payment_method_updated`; attaching the card a subscription
    already has changes nothing and sends nothing.

    :raises ValidationError: the card is another customer's (code
        ``"other_customer"``), or the subscription has ended (``"subscription_ended"``).
    """
    check_owner(subscription, payment_method)
    current = subscription.status in CURRENT_STATUSES
    if current and subscription.payment_method_id == payment_method.id:
        return subscription
    with unit_of_work():
        if not set_payment_method(subscription, payment_method):
            raise ValidationError(
                "subscription", "subscription_ended", "has ended; its payment method cannot change"
            )
    _send_updated(subscription, payment_method)
    return subscription


def remove_payment_method(payment_method: PaymentMethod) -> None:
    """Forget a saved card (the processor detached it); commit.

    If it was the default, the customer's newest other card becomes the
    default (none if it was their only one). The current subscriptions that
    renewed with it renew with the default card now, or have no card; the
    payments made with it keep their amounts but no longer name a card. Sends
    :data:`~.signals.payment_method_removed`, and
    :data:`~.signals.payment_method_updated` for each subscription moved to
    another card.

    :raises ValidationError: a payment with the card is still in flight (code
        ``"payment_in_flight"``): remove it once that payment is settled.
    """
    session = portal.session
    customer = payment_method.customer
    with unit_of_work():
        _refuse_in_flight(payment_method)
        others = [card for card in list_payment_methods(customer) if card.id != payment_method.id]
        fallback = others[0] if others else None
        users = list(
            session.scalars(select(Subscription).filter_by(payment_method_id=payment_method.id))
        )
        moved = [s for s in users if fallback is not None and s.status in CURRENT_STATUSES]
        for model in (Subscription, Payment):
            update_rows(
                update(model)
                .where(model.payment_method_id == payment_method.id)
                .values(payment_method_id=None)
            )
        session.delete(payment_method)
        session.flush()
        if fallback is not None:
            fallback.is_default = True
            moved = [s for s in moved if set_payment_method(s, fallback)]
    signals.send(signals.payment_method_removed, customer=customer, payment_method=payment_method)
    for subscription in moved:
        assert fallback is not None
        _send_updated(subscription, fallback)


def remove_saved_card(payment_method: PaymentMethod) -> None:
    """Remove a card at the customer's request: at the provider, then here; commit.

    Refused for the last card of a customer whose current subscription renews
    with it (add another card first), and for a card a payment in flight uses.
    Otherwise the provider forgets the card and :func:`remove_payment_method`
    removes it, moving its subscriptions to the default card.

    :raises ValidationError: code ``"last_card"`` or ``"payment_in_flight"``.
    :raises ProviderError: the provider could not be reached; nothing was removed.
    """
    customer = payment_method.customer
    backed = portal.session.scalar(
        select(Subscription.id).where(
            Subscription.payment_method_id == payment_method.id,
            Subscription.status.in_(CURRENT_STATUSES),
        )
    )
    others = [card for card in list_payment_methods(customer) if card.id != payment_method.id]
    if backed is not None and not others:
        raise ValidationError(
            "payment_method",
            "last_card",
            "is the only card of a current subscription; add another card first",
        )
    _refuse_in_flight(payment_method)
    provider_for(customer.mode).detach_card(
        customer_ref=customer_ref(customer, ensure=True), token=payment_method.provider_token
    )
    remove_payment_method(payment_method)


def _refuse_in_flight(payment_method: PaymentMethod) -> None:
    in_flight = portal.session.scalar(
        select(Payment.id).where(
            Payment.payment_method_id == payment_method.id, Payment.status.in_(IN_FLIGHT)
        )
    )
    if in_flight is not None:
        raise ValidationError(
            "payment_method",
            "payment_in_flight",
            "is paying an invoice right now; remove it once that payment is settled",
        )


def _send_updated(subscription: Subscription, method: PaymentMethod) -> None:
    signals.send(
        signals.payment_method_updated,
        customer=subscription.customer,
        subscription=subscription,
        payment_method=method,
    )


def _brand(value: Any) -> str:
    brand = v.required_text("brand", value, max_length=20).lower()
    if not _BRAND.fullmatch(brand):
        raise ValidationError(
            "brand", "invalid_brand", "must be a card brand such as visa or mastercard"
        )
    return brand


def _last4(value: Any) -> str:
    if not (isinstance(value, str) and _LAST4.fullmatch(value)):
        raise ValidationError("last4", "invalid_last4", "must be the last four digits of the card")
    return value


def _month(value: Any) -> int:
    if v.count("exp_month", value) > 12:
        raise ValidationError("exp_month", "invalid_month", "must be a month from 1 to 12")
    return int(value)


def _year(value: Any) -> int:
    if v.count("exp_year", value, minimum=2000) > 2999:
        raise ValidationError("exp_year", "invalid_year", "must be a year before 3000")
    return int(value)


def begin_card_setup(customer: Customer, *, return_url: str) -> str:
    """Return the URL of the provider's page where ``customer`` adds a card.

    The provider sends the customer back to ``return_url`` with parameters of
    its own; pass them to :func:`finish_card_setup`.

    :raises ProviderError: the provider could not be reached.
    """
    return provider_for(customer.mode).begin_card_setup(
        customer_ref=customer_ref(customer, ensure=True),
        email=customer.email,
        return_url=return_url,
    )


def added_card(customer: Customer, params: Mapping[str, str]) -> SavedCard:
    """Return the card ``customer`` just added on the provider's page; nothing is written.

    :param params: what the provider sent the customer back with.
    :raises ValidationError: the parameters name no finished setup of this
        customer (code ``"card_setup_not_found"``).
    """
    provider = provider_for(customer.mode)
    try:
        return provider.complete_card_setup(customer_ref=customer_ref(customer), params=params)
    except (ValueError, ProviderError):
        raise ValidationError(
            "setup_id", "card_setup_not_found", "names no card setup this customer finished"
        ) from None


def finish_card_setup(customer: Customer, params: Mapping[str, str]) -> PaymentMethod:
    """Save the card ``customer`` just added on the provider's page; commit; return it.

    :raises ValidationError: the parameters name no finished setup of this
        customer (code ``"card_setup_not_found"``).
    """
    return save_card(customer, added_card(customer, params))
