"""Saved cards: adding one on the provider's page, and the cards a customer keeps.

The card number is only ever typed on the provider's page; the portal keeps
what :class:`~.providers.SavedCard` carries: the provider's token, the brand,
the last four digits and the expiry (P1).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from . import validation as v
from .errors import ValidationError
from .models import Customer, PaymentMethod
from .provider_customers import customer_ref
from .providers.base import ProviderError, SavedCard
from .proxies import portal, provider_for

_LAST4 = re.compile(r"\d{4}")


def customer_cards(customer: Customer) -> list[PaymentMethod]:
    """Return ``customer``'s saved cards, the default first, then oldest first."""
    return list(
        portal.session.scalars(
            select(PaymentMethod)
            .filter_by(customer_id=customer.id)
            .order_by(PaymentMethod.is_default.desc(), PaymentMethod.created_at, PaymentMethod.id)
        )
    )


def get_card(customer: Customer, public_id: str) -> PaymentMethod | None:
    """Return ``customer``'s saved card with this public id, or ``None`` (Z1)."""
    return portal.session.scalar(
        select(PaymentMethod).filter_by(customer_id=customer.id, public_id=public_id)
    )


def save_card(customer: Customer, card: SavedCard) -> PaymentMethod:
    """Save a card the provider keeps for ``customer``; commit; return it.

    Only the provider's token, brand, last four digits and expiry are stored
    (P1): a token that looks like a card number is refused. Saving the same
    token again returns the saved card. The customer's first card becomes
    their default.

    :raises ValidationError: a field is malformed, or the token looks like a card number.
    """
    token = v.required_text("token", card.token, max_length=255)
    v.not_a_card_number("token", token)
    if not (isinstance(card.last4, str) and _LAST4.fullmatch(card.last4)):
        raise ValidationError("last4", "invalid_last4", "must be the last four digits of the card")
    if v.count("exp_month", card.exp_month) > 12:
        raise ValidationError("exp_month", "invalid_month", "must be a month from 1 to 12")
    if v.count("exp_year", card.exp_year, minimum=2000) > 2999:
        raise ValidationError("exp_year", "invalid_year", "must be a year before 3000")
    fields = {
        "provider_token": token,
        "brand": v.required_text("brand", card.brand, max_length=20),
        "last4": card.last4,
        "exp_month": card.exp_month,
        "exp_year": card.exp_year,
    }
    try:
        return _insert_card(customer, fields)
    except IntegrityError:
        # Another request saved this token, or a default card, a moment ago.
        portal.session.rollback()
        return _insert_card(customer, fields)


def _insert_card(customer: Customer, fields: dict[str, Any]) -> PaymentMethod:
    session = portal.session
    saved = session.scalar(
        select(PaymentMethod).filter_by(
            customer_id=customer.id, provider_token=fields["provider_token"]
        )
    )
    if saved is not None:
        return saved
    has_default = session.scalar(
        select(PaymentMethod.id).filter_by(customer_id=customer.id, is_default=True)
    )
    method = PaymentMethod(customer_id=customer.id, is_default=has_default is None, **fields)
    session.add(method)
    session.commit()
    return method


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
