"""The test provider: the embedded default in test mode, with pages of its own.

It keeps its records in the portal's database (:mod:`.test_tables`), so test
mode works with many processes. Its card page (a view of
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

A saved card keeps its outcome, never its number. A card page expires after
:data:`SETUP_LIFETIME`. A charge waiting for authentication stays open until the
challenge is answered or :meth:`TestProvider.cancel_charge` closes it. Set
``fail_after_charge`` to ``"crash"`` or ``"timeout"`` and the next charges of
this process are recorded as made, then :class:`~.base.ProviderError` is
raised: the portal does not learn the outcome until it calls
:meth:`TestProvider.lookup`.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import date, timedelta
from typing import Any, Literal, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sqlalchemy import Connection, CursorResult, Engine, Row, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from ..db import utcnow
from ..i18n import N_
from ..urls import external_url
from .base import ChargeResult, ProviderError, SavedCard
from .test_tables import (
    CardSetup,
    TestCharge,
    cards,
    charge_record,
    charges,
    find_charge,
    open_setup,
    saved_card,
    setups,
)

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
CANCELLED = N_("The payment was cancelled before the bank confirmed it; you were not charged.")
NOT_AVAILABLE = N_("This card is not available. Add it again.")

#: How long a card page stays open.
SETUP_LIFETIME = timedelta(hours=1)

#: The blueprint of the provider's card and challenge pages.
_PAGES = "customer_portal_test_provider"


class CardError(ValueError):
    """The card page's entry is not a usable test card; the message is for the customer."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class TestProvider:
    """A :class:`~.base.PaymentProvider` deciding outcomes by test card number.

    Its records live in the portal's database: :meth:`bind` (which
    :class:`~flask_customer_portal.CustomerPortal` calls at start-up) tells it
    which. Each call is a transaction of its own.

    :param fail_after_charge: ``"crash"`` or ``"timeout"`` to record each
        charge as made and then raise :class:`~.base.ProviderError`; tests may
        set the attribute at any time (it is this object's, not the database's).
    """

    __test__ = False  # not a pytest test class

    def __init__(self, *, fail_after_charge: Literal["crash", "timeout"] | None = None) -> None:
        self.fail_after_charge = fail_after_charge
        self._engine: Callable[[], Engine] | None = None

    def bind(self, engine: Callable[[], Engine]) -> None:
        """Keep the provider's records in the database ``engine()`` returns."""
        self._engine = engine

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        if self._engine is None:
            raise RuntimeError("this TestProvider has no database: pass it to CustomerPortal")
        with self._engine().begin() as connection:
            yield connection

    @property
    def charges(self) -> dict[str, TestCharge]:
        """Every charge made, by idempotency key (one per key, whatever its outcome)."""
        with self._transaction() as connection:
            rows = connection.execute(
                select(charges).order_by(charges.c.created_at, charges.c.idempotency_key)
            )
            return {row.idempotency_key: charge_record(row) for row in rows}

    @property
    def charge_count(self) -> int:
        """The number of distinct charges made (one per idempotency key)."""
        with self._transaction() as connection:
            return int(connection.scalar(select(func.count()).select_from(charges)) or 0)

    # -- Card setup --------------------------------------------------------------

    def begin_card_setup(self, *, customer_ref: str, email: str, return_url: str) -> str:
        """Open a card page for the customer and return its absolute URL."""
        setup_id, now = "seti_" + secrets.token_urlsafe(16), utcnow()
        with self._transaction() as connection:
            connection.execute(
                insert(setups).values(
                    setup_id=setup_id,
                    customer_ref=customer_ref,
                    email=email,
                    return_url=return_url,
                    created_at=now,
                    expires_at=now + SETUP_LIFETIME,
                )
            )
        return external_url(_PAGES + ".setup", setup_id=setup_id)

    def get_setup(self, setup_id: str) -> CardSetup | None:
        """Return the open card page ``setup_id`` (for the pages), or ``None``."""
        with self._transaction() as connection:
            row = connection.execute(open_setup(setup_id)).first()
        if row is None:
            return None
        card = saved_card(row) if row.token is not None else None
        return CardSetup(
            row.setup_id, row.customer_ref, row.email, row.return_url, row.expires_at, card
        )

    def save_card(self, setup_id: str, *, number: str, expiry: str, cvc: str) -> str:
        """Save the card entered on a card page; return the URL to send the customer back to.

        :raises CardError: not a test card, a past or malformed expiry, no CVC.
        :raises KeyError: no such open card page, or its card is already saved.
        """
        outcome = _card_outcome(number)
        exp_month, exp_year = _parse_expiry(expiry)
        if not (cvc.strip().isdigit() and 3 <= len(cvc.strip()) <= 4):
            raise CardError("cvc", N_("Enter the 3 or 4 digits on the back of the card."))
        token, now = "card_" + secrets.token_urlsafe(16), utcnow()
        with self._transaction() as connection:
            setup = connection.execute(open_setup(setup_id)).first()
            if setup is None or setup.saved_token is not None:
                raise KeyError(setup_id)
            connection.execute(
                insert(cards).values(
                    token=token,
                    customer_ref=setup.customer_ref,
                    brand="visa",
                    last4="".join(number.split())[-4:],
                    exp_month=exp_month,
                    exp_year=exp_year,
                    outcome=outcome,
                    created_at=now,
                )
            )
            # One card per page, even when two submits race.
            taken = connection.execute(
                update(setups)
                .where(setups.c.setup_id == setup_id, setups.c.saved_token.is_(None))
                .values(saved_token=token)
            )
            if cast(CursorResult[Any], taken).rowcount != 1:
                raise KeyError(setup_id)
        return with_query(setup.return_url, setup_id=setup_id)

    def complete_card_setup(self, *, customer_ref: str, params: Mapping[str, str]) -> SavedCard:
        """Return the card saved on the open card page named by ``params["setup_id"]``.

        :raises ValueError: no such finished setup of this customer, or it has expired.
        """
        with self._transaction() as connection:
            row = connection.execute(open_setup(params.get("setup_id") or "")).first()
        if row is None or row.customer_ref != customer_ref or row.token is None:
            raise ValueError("no finished card setup of this customer")
        return saved_card(row)

    def list_cards(self, *, customer_ref: str) -> list[SavedCard]:
        """Return the customer's saved cards, oldest first."""
        with self._transaction() as connection:
            rows = connection.execute(
                select(cards)
                .where(cards.c.customer_ref == customer_ref)
                .order_by(cards.c.created_at, cards.c.token)
            )
            return [saved_card(row) for row in rows]

    def detach_card(self, *, customer_ref: str, token: str) -> None:
        """Forget one of the customer's saved cards (nothing happens for another's)."""
        with self._transaction() as connection:
            connection.execute(
                delete(cards).where(cards.c.token == token, cards.c.customer_ref == customer_ref)
            )

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
        try:
            with self._transaction() as connection:
                if find_charge(connection, idempotency_key) is None:
                    outcome = connection.scalar(
                        select(cards.c.outcome).where(
                            cards.c.token == token, cards.c.customer_ref == customer_ref
                        )
                    )
                    status, reason = _decide(outcome)
                    connection.execute(
                        insert(charges).values(
                            idempotency_key=idempotency_key,
                            charge_id="ch_" + secrets.token_urlsafe(16),
                            customer_ref=customer_ref,
                            token=token,
                            amount=amount,
                            currency=currency,
                            description=description[:500],
                            return_url=return_url,
                            status=status,
                            failure_reason=reason,
                            created_at=utcnow(),
                        )
                    )
        except IntegrityError:
            pass  # the same key, charged by a request that got here first
        failure = self.fail_after_charge
        if failure is not None:
            raise ProviderError(
                "the test provider crashed after charging"
                if failure == "crash"
                else "the test provider timed out after charging"
            )
        result = self.lookup(idempotency_key=idempotency_key)
        assert result is not None
        return result

    def lookup(self, *, idempotency_key: str) -> ChargeResult | None:
        """Return the current outcome of the charge made with this key, or ``None``."""
        with self._transaction() as connection:
            row = find_charge(connection, idempotency_key)
        return _result(row) if row is not None else None

    def cancel_charge(self, *, idempotency_key: str) -> ChargeResult | None:
        """Close a charge still waiting for authentication (it fails, nothing is taken).

        Returns the charge's final outcome (one already decided keeps it), or
        ``None`` if no charge was made with this key.
        """
        with self._transaction() as connection:
            connection.execute(
                update(charges)
                .where(
                    charges.c.idempotency_key == idempotency_key,
                    charges.c.status == "requires_action",
                )
                .values(status="failed", failure_reason=CANCELLED)
            )
            row = find_charge(connection, idempotency_key)
        return _result(row) if row is not None else None

    def get_challenge(self, charge_id: str) -> TestCharge | None:
        """Return the charge behind a challenge page (for the pages), or ``None``."""
        with self._transaction() as connection:
            row = connection.execute(
                select(charges).where(charges.c.charge_id == charge_id)
            ).first()
        return charge_record(row) if row is not None else None

    def answer_challenge(self, charge_id: str, *, approve: bool) -> str:
        """Decide a charge waiting for authentication; return its ``return_url``.

        A charge already decided (or closed) keeps its outcome.

        :raises KeyError: no such charge.
        """
        decided = (
            {"status": "succeeded"}
            if approve
            else {
                "status": "failed",
                "failure_reason": AUTHENTICATION_FAILED,
            }
        )
        with self._transaction() as connection:
            connection.execute(
                update(charges)
                .where(charges.c.charge_id == charge_id, charges.c.status == "requires_action")
                .values(**decided)
            )
            return_url = connection.scalar(
                select(charges.c.return_url).where(charges.c.charge_id == charge_id)
            )
        if return_url is None:
            raise KeyError(charge_id)
        return str(return_url)


def _decide(outcome: str | None) -> tuple[str, str | None]:
    # What a charge to a card of this outcome comes to (a card of someone else's: None).
    if outcome is None:
        return "failed", NOT_AVAILABLE
    if outcome == "succeed":
        return "succeeded", None
    if outcome == "authenticate":
        return "requires_action", None
    return "failed", FAILURE_REASONS[cast(Outcome, outcome)]


def _result(row: Row[Any]) -> ChargeResult:
    action_url = None
    if row.status == "requires_action":
        action_url = external_url(_PAGES + ".challenge", charge_id=row.charge_id)
    return ChargeResult(row.status, row.charge_id, row.failure_reason, action_url)


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


def with_query(url: str, **params: str) -> str:
    """Return ``url`` with ``params`` added to its query."""
    parts = urlsplit(url)
    query = urlencode([*parse_qsl(parts.query, keep_blank_values=True), *params.items()])
    return urlunsplit(parts._replace(query=query))
