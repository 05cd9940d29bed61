"""The payment-provider protocol: what the portal asks of a payment service.

A provider hosts the card entry (the merchant's server never sees a card
number), keeps the saved cards, and charges them. The portal stores only what
:class:`SavedCard` carries. Every charge carries an idempotency key made from
the portal's own payment-attempt row: asking twice with the same key must never
charge twice, and :meth:`PaymentProvider.lookup` must find a charge by that key
after a crash or a time-out.

Providers never import the portal's domain: they get plain values and return
the small immutable records below.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

ChargeStatus = Literal["succeeded", "failed", "requires_action"]


@dataclass(frozen=True)
class SavedCard:
    """A payment method the provider keeps: its token and what the customer recognises."""

    token: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int


@dataclass(frozen=True)
class ChargeResult:
    """The outcome of a charge.

    ``failure_reason`` is written for the customer ("Your card was declined.").
    ``action_url`` is where to send the customer when ``status`` is
    ``"requires_action"``; the provider sends them back to the ``return_url``
    given to :meth:`PaymentProvider.charge`, and :meth:`PaymentProvider.lookup`
    then tells the final result.
    """

    status: ChargeStatus
    reference: str | None = None
    failure_reason: str | None = None
    action_url: str | None = None


class ProviderError(Exception):
    """The provider could not be reached or did not answer: the outcome is unknown."""


@runtime_checkable
class PaymentProvider(Protocol):
    """What a payment provider implements for the portal."""

    def begin_card_setup(self, *, customer_ref: str, email: str, return_url: str) -> str:
        """Return the URL of the provider's page where the customer enters a card.

        After the card is saved the provider redirects to ``return_url`` with
        query parameters of its own, which the portal passes to
        :meth:`complete_card_setup`.
        """

    def complete_card_setup(self, *, customer_ref: str, params: Mapping[str, str]) -> SavedCard:
        """Return the card saved by the setup the customer just finished.

        :raises ValueError: the parameters name no finished setup of this customer.
        """

    def list_cards(self, *, customer_ref: str) -> list[SavedCard]:
        """Return the cards the provider keeps for this customer."""

    def detach_card(self, *, customer_ref: str, token: str) -> None:
        """Forget a saved card."""

    def charge(
        self,
        *,
        customer_ref: str,
        token: str,
        amount: int,
        currency: str,
        idempotency_key: str,
        description: str,
        return_url: str,
    ) -> ChargeResult:
        """Charge ``amount`` (minor units) to a saved card, once per ``idempotency_key``.

        :raises ProviderError: the outcome is unknown (time-out, crash); call
            :meth:`lookup` later with the same key.
        """

    def lookup(self, *, idempotency_key: str) -> ChargeResult | None:
        """Return the outcome of the charge made with this key, or ``None`` if there was none."""

    def cancel_charge(self, *, idempotency_key: str) -> ChargeResult | None:
        """Close the charge made with this key if it still waits for the customer (3-D Secure).

        The portal calls it when the customer abandons the extra step (after
        ``CUSTOMER_PORTAL_ACTION_TIMEOUT``) or cancels the subscription: the
        charge must then never complete. Returns the charge's final outcome
        (``"failed"`` once closed; one decided meanwhile keeps its outcome), or
        ``None`` if no charge was made with this key.

        :raises ProviderError: the provider could not be reached; the portal tries again later.
        """
