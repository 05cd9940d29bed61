"""The test provider: the embedded default in test mode, with pages of its own.

It keeps everything in memory, per app, behind a lock. Its card page (a view of
the portal's, :mod:`flask_customer_portal.views.test_provider`, at
``<URL_PREFIX>/test-provider/setup/<setup_id>``, form fields
``number``, ``expiry`` as ``MM/YY``, ``cvc`` and ``csrf_token``) takes the test
cards below, any future expiry and any CVC, then redirects (303) to the
``return_url`` with ``?setup_id=<id>`` appended. A charge needing
authentication sends the customer to the challenge page
``<URL_PREFIX>/test-provider/challenge/<charge_id>`` (buttons ``decision``
``approve`` or ``fail``), which redirects (303) back to the charge's
``return_url``.

============================  =============================================
card                          outcome of a charge
============================  =============================================
4242 4242 4242 4242           succeeds
4000 0000 0000 0002           fails: "Your card was declined."
4000 0000 0000 9995           fails: "Your card has insufficient funds."
4000 0000 0000 0069           fails: "Your card has expired."
4000 0027 6000 3184           requires authentication, then succeeds or fails
4000 0000 0000 0341           saves fine, every charge fails (declined)
============================  =============================================

A saved card keeps its outcome, never its number. Set ``fail_after_charge``
to ``"crash"`` or ``"timeout"`` and the next charges are recorded as made, then
:class:`~.base.ProviderError` is raised: the portal does not learn the outcome
until it calls :meth:`TestProvider.lookup`.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date
from typing import Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..i18n import N_
from ..urls import external_url
from .base import ChargeResult, ProviderError, SavedCard

Outcome = Literal["succeed", "declined", "insufficient_funds", "expired", "authenticate"]

#: The test cards: number → (outcome of every charge, what the card page says of it).
TEST_CARDS: dict[str, tuple[Outcome, str]] = {
    "4242424242424242": ("succeed", N_("Succeeds")),
    "4000000000000002": ("declined", N_("Declined")),
    "4000000000009995": ("insufficient_funds", N_("Insufficient funds")),
    "4000000000000069": ("expired", N_("Expired card")),
    "4000002760003184": ("authenticate", N_("Requires authentication, then succeeds or fails")),
    "4000000000000341": ("declined", N_("Saves fine, every charge fails")),
}

#: What the customer reads when a charge fails (in English, translated where it is shown).
FAILURE_REASONS: dict[Outcome, str] = {
    "declined": N_("Your card was declined."),
    "insufficient_funds": N_("Your card has insufficient funds."),
    "expired": N_("Your card has expired."),
}
AUTHENTICATION_FAILED = N_("The bank declined the authentication.")

#: The blueprint of the provider's card and challenge pages.
_PAGES = "customer_portal_test_provider"


class CardError(ValueError):
    """The card page's entry is not a usable test card; the message is for the customer."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass
class CardSetup:
    """A card page opened for one customer; ``card`` is set once a card is saved."""

    setup_id: str
    customer_ref: str
    email: str
    return_url: str
    card: SavedCard | None = None


@dataclass(frozen=True)
class TestCharge:
    """A charge the test provider made, keyed by its idempotency key in ``charges``."""

    __test__ = False  # not a pytest test class

    charge_id: str
    customer_ref: str
    token: str
    amount: int
    currency: str
    description: str
    return_url: str
    status: Literal["succeeded", "failed", "requires_action"]
    failure_reason: str | None = None


class TestProvider:
    """An in-memory :class:`~.base.PaymentProvider` deciding outcomes by test card number.

    :param fail_after_charge: ``"crash"`` or ``"timeout"`` to record each
        charge as made and then raise :class:`~.base.ProviderError`; tests may
        set the attribute at any time.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, *, fail_after_charge: Literal["crash", "timeout"] | None = None) -> None:
        self.fail_after_charge = fail_after_charge
        #: Every charge made, by idempotency key (one per key, whatever its outcome).
        self.charges: dict[str, TestCharge] = {}
        self._setups: dict[str, CardSetup] = {}
        #: Saved cards by token: the customer, what the portal sees, and the outcome.
        self._cards: dict[str, tuple[str, SavedCard, Outcome]] = {}
        self._challenges: dict[str, str] = {}  # charge_id → idempotency key
        self._lock = threading.Lock()

    @property
    def charge_count(self) -> int:
        """The number of distinct charges made (one per idempotency key)."""
        with self._lock:
            return len(self.charges)

    # -- Card setup --------------------------------------------------------------

    def begin_card_setup(self, *, customer_ref: str, email: str, return_url: str) -> str:
        """Open a card page for the customer and return its absolute URL."""
        setup = CardSetup("seti_" + secrets.token_urlsafe(16), customer_ref, email, return_url)
        with self._lock:
            self._setups[setup.setup_id] = setup
        return external_url(_PAGES + ".setup", setup_id=setup.setup_id)

    def get_setup(self, setup_id: str) -> CardSetup | None:
        """Return the card page ``setup_id`` (for the pages), or ``None``."""
        with self._lock:
            setup = self._setups.get(setup_id)
            return replace(setup) if setup else None

    def save_card(self, setup_id: str, *, number: str, expiry: str, cvc: str) -> str:
        """Save the card entered on a card page; return the URL to send the customer back to.

        :raises CardError: not a test card, a past or malformed expiry, no CVC.
        :raises KeyError: no such card page, or its card is already saved.
        """
        outcome = _card_outcome(number)
        exp_month, exp_year = _parse_expiry(expiry)
        if not (cvc.strip().isdigit() and 3 <= len(cvc.strip()) <= 4):
            raise CardError("cvc", N_("Enter the 3 or 4 digits on the back of the card."))
        last4 = "".join(number.split())[-4:]
        card = SavedCard("card_" + secrets.token_urlsafe(16), "visa", last4, exp_month, exp_year)
        with self._lock:
            setup = self._setups[setup_id]
            if setup.card is not None:
                raise KeyError(setup_id)
            setup.card = card
            self._cards[card.token] = (setup.customer_ref, card, outcome)
        return _with_query(setup.return_url, setup_id=setup_id)

    def complete_card_setup(self, *, customer_ref: str, params: Mapping[str, str]) -> SavedCard:
        """Return the card saved on the card page named by ``params["setup_id"]``.

        :raises ValueError: no such finished setup for this customer.
        """
        with self._lock:
            setup = self._setups.get(params.get("setup_id") or "")
            if setup is None or setup.customer_ref != customer_ref or setup.card is None:
                raise ValueError("no finished card setup of this customer")
            return setup.card

    def list_cards(self, *, customer_ref: str) -> list[SavedCard]:
        """Return the customer's saved cards, oldest first."""
        with self._lock:
            return [card for ref, card, _ in self._cards.values() if ref == customer_ref]

    def detach_card(self, *, customer_ref: str, token: str) -> None:
        """Forget one of the customer's saved cards (nothing happens for another's)."""
        with self._lock:
            entry = self._cards.get(token)
            if entry is not None and entry[0] == customer_ref:
                del self._cards[token]

    # -- Charges -----------------------------------------------------------------

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
        """Charge a saved card once per ``idempotency_key``; the same key answers the same.

        :raises ProviderError: ``fail_after_charge`` is set (after recording the charge).
        :raises ValueError: a non-positive amount or a malformed currency.
        """
        if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
            raise ValueError("amount must be a positive integer of minor units")
        if not (len(currency) == 3 and currency.isalpha() and currency.isupper()):
            raise ValueError("currency must be an ISO 4217 code such as 'USD'")
        with self._lock:
            existing = self.charges.get(idempotency_key)
            if existing is None:
                entry = self._cards.get(token)
                outcome: Outcome | None = entry[2] if entry and entry[0] == customer_ref else None
                status: Literal["succeeded", "failed", "requires_action"]
                reason = None
                if outcome is None:
                    status, reason = "failed", N_("This card is not available. Add it again.")
                elif outcome == "succeed":
                    status = "succeeded"
                elif outcome == "authenticate":
                    status = "requires_action"
                else:
                    status, reason = "failed", FAILURE_REASONS[outcome]
                existing = TestCharge(
                    "ch_" + secrets.token_urlsafe(16),
                    customer_ref,
                    token,
                    amount,
                    currency,
                    description,
                    return_url,
                    status,
                    reason,
                )
                self.charges[idempotency_key] = existing
                self._challenges[existing.charge_id] = idempotency_key
        failure = self.fail_after_charge
        if failure is not None:
            raise ProviderError(
                "the test provider crashed after charging"
                if failure == "crash"
                else "the test provider timed out after charging"
            )
        return self._result(existing)

    def lookup(self, *, idempotency_key: str) -> ChargeResult | None:
        """Return the current outcome of the charge made with this key, or ``None``."""
        with self._lock:
            charge = self.charges.get(idempotency_key)
        return self._result(charge) if charge else None

    def get_challenge(self, charge_id: str) -> TestCharge | None:
        """Return the charge behind a challenge page (for the pages), or ``None``."""
        with self._lock:
            key = self._challenges.get(charge_id)
            return self.charges[key] if key is not None else None

    def answer_challenge(self, charge_id: str, *, approve: bool) -> str:
        """Decide a charge waiting for authentication; return its ``return_url``.

        A charge already decided keeps its outcome.

        :raises KeyError: no such charge.
        """
        with self._lock:
            key = self._challenges[charge_id]
            charge = self.charges[key]
            if charge.status == "requires_action":
                if approve:
                    charge = replace(charge, status="succeeded")
                else:
                    charge = replace(charge, status="failed", failure_reason=AUTHENTICATION_FAILED)
                self.charges[key] = charge
        return charge.return_url

    def _result(self, charge: TestCharge) -> ChargeResult:
        action_url = None
        if charge.status == "requires_action":
            action_url = external_url(_PAGES + ".challenge", charge_id=charge.charge_id)
        return ChargeResult(charge.status, charge.charge_id, charge.failure_reason, action_url)


def _card_outcome(number: str) -> Outcome:
    digits = "".join(number.split())
    if not digits:
        raise CardError("number", N_("Enter a card number."))
    card = TEST_CARDS.get(digits)
    if card is None:
        raise CardError("number", N_("Use one of the test cards listed on this page."))
    return card[0]


def _parse_expiry(expiry: str, today: date | None = None) -> tuple[int, int]:
    month_text, _, year_text = "".join(expiry.split()).partition("/")
    if not (month_text.isdigit() and year_text.isdigit() and len(year_text) in (2, 4)):
        raise CardError("expiry", N_("Enter the expiry date as MM/YY, such as 12/34."))
    month, year = int(month_text), int(year_text)
    year += 2000 if len(year_text) == 2 else 0
    if not 1 <= month <= 12:
        raise CardError("expiry", N_("Enter the expiry date as MM/YY, such as 12/34."))
    today = today or date.today()
    if (year, month) < (today.year, today.month):
        raise CardError("expiry", N_("This card has expired: use a future expiry date."))
    return month, year


def _with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = urlencode([*parse_qsl(parts.query, keep_blank_values=True), *params.items()])
    return urlunsplit(parts._replace(query=query))
