"""Stripe's cards in the portal: payment methods attached and detached, a customer's cards synced.

Like :mod:`.stripe_sync`, each function is convergent and writes through the
data API (:func:`~.cards.save_payment_method`, :func:`~.cards.remove_payment_method`):
a card is one row per Stripe payment method id (its ``provider_token``), so
applying the same object twice changes nothing. The portal's default card is
the one Stripe's customer pays its invoices with
(``invoice_settings.default_payment_method``) when that is known.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from .cards import list_payment_methods, remove_payment_method, save_payment_method
from .models import Business, Customer, PaymentMethod
from .proxies import portal
from .stripe_sync import Object, find_customer, stripe_id


def default_card(stripe_customer: Object) -> str | None:
    """Return the id of the card a Stripe customer pays its invoices with, or ``None``."""
    return stripe_id((stripe_customer.get("invoice_settings") or {}).get("default_payment_method"))


def apply_attached_card(
    business: Business, mode: str, data: Object, *, client: Any = None
) -> PaymentMethod | None:
    """Save a card attached to a Stripe customer the portal knows (by its external id).

    It becomes the customer's default if Stripe's customer pays invoices with
    it; that is asked of Stripe with ``client`` (without one, it is the
    default only as the customer's first card). ``None`` for a payment method
    that is no card, or of a customer the portal does not know.
    """
    customer = find_customer(business, mode, data.get("customer"))
    if customer is None or not isinstance(data.get("card"), Mapping):
        return None
    default = False
    if client is not None:
        stripe_customer = client.v1.customers.retrieve(stripe_id(data["customer"])).to_dict()
        default = default_card(stripe_customer) == stripe_id(data)
    return _save(customer, data, default=default)


def _save(customer: Customer, data: Object, *, default: bool) -> PaymentMethod:
    card = data["card"]
    return save_payment_method(
        customer,
        provider_token=str(stripe_id(data)),
        brand=str(card.get("brand") or ""),
        last4=str(card.get("last4") or ""),
        exp_month=card.get("exp_month"),
        exp_year=card.get("exp_year"),
        default=default,
    )


def apply_detached_card(business: Business, mode: str, data: Object) -> PaymentMethod | None:
    """Forget the card of a Stripe payment method detached from its customer.

    Stripe's event no longer names the customer: the card is found by its
    token among the business's cards in ``mode``. ``None`` when the portal
    has no such card (it was never saved, or the portal detached it itself).
    """
    token = stripe_id(data)
    if token is None:
        return None
    method = portal.session.scalar(
        select(PaymentMethod)
        .join(Customer, PaymentMethod.customer_id == Customer.id)
        .where(
            Customer.business_id == business.id,
            Customer.mode == mode,
            PaymentMethod.provider_token == token,
        )
    )
    if method is not None:
        remove_payment_method(method)
    return method


def sync_cards(customer: Customer, client: Any, stripe_customer: Object) -> list[str]:
    """Bring ``customer``'s cards in line with the Stripe customer's; return the cards' ids.

    Each card of Stripe's customer is saved (Stripe's invoice default last, as
    the default); a saved card Stripe's customer no longer has is removed.
    """
    default = default_card(stripe_customer)
    listed = client.v1.payment_methods.list(
        params={"customer": stripe_id(stripe_customer), "type": "card"}
    )
    found = [item.to_dict() for item in listed.auto_paging_iter()]
    cards = sorted(found, key=lambda card: card["id"] == default)
    for card in cards:
        _save(customer, card, default=card["id"] == default)
    at_stripe = {card["id"] for card in cards}
    for method in list_payment_methods(customer):
        if method.provider_token not in at_stripe:
            remove_payment_method(method)
    return [card["id"] for card in cards]
