"""A Hypothesis state machine over renewals, payments, challenges, cancelling and reconciling.

Whatever the order of failed renewals, card changes (with any test card, and
now and then a provider that crashes or times out after charging), challenge
answers, cancellations and reconciler runs, the invariants of P2-P4 hold after
every step. Each example is a new customer with one subscription, in the same
database: the test provider's charges are told apart by customer.
"""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy.orm import Session

import flask_customer_portal as portal
from flask_customer_portal import models as m
from flask_customer_portal import payments, settlement
from flask_customer_portal.models import IN_FLIGHT
from flask_customer_portal.providers import TestProvider

from .conftest import provider_of
from .helpers import (
    AUTHENTICATE,
    CHARGE_FAILS,
    DECLINED,
    PAYMENT_RETURN_URL,
    SUCCEEDS,
    add_card,
)

#: The test cards, by what a charge to them does.
CARDS = {
    "succeeds": SUCCEEDS,
    "declined": DECLINED,
    "authenticate": AUTHENTICATE,
    "charge_fails": CHARGE_FAILS,
}
#: What a charge to each card answers at once.
ANSWERS = {
    "succeeds": "succeeded",
    "declined": "failed",
    "authenticate": "requires_action",
    "charge_fails": "failed",
}

SETTINGS = settings(
    max_examples=50,
    stateful_step_count=15,
    deadline=None,
    derandomize=True,
    database=None,
)


def test_payment_invariants_hold_in_any_order(
    app: Flask, session: Session, business: m.Business
) -> None:
    """P2, P3, P4: an active subscription owes nothing; a cancelled one is never charged again;
    successful charges equal the dues settled; one payment in flight per subscription."""
    provider = provider_of(app)
    customers = itertools.count()

    def machine() -> PaymentsMachine:
        return PaymentsMachine(session, business, provider, next(customers))

    run_state_machine_as_test(machine, settings=SETTINGS)


class PaymentsMachine(RuleBasedStateMachine):
    def __init__(
        self, session: Session, business: m.Business, provider: TestProvider, number: int
    ) -> None:
        super().__init__()
        self.session, self.provider = session, provider
        self.customer = portal.upsert_customer(business, f"customer{number}@example.com")
        self.subscription = portal.start_subscription(
            self.customer, product="Acme Cloud", plan="Pro", price=2900, currency="USD"
        )
        # Start where the interesting part begins: the last renewal failed.
        portal.record_failed_renewal(self.subscription, reason="Card declined at renewal")
        self.cards: dict[str, m.PaymentMethod] = {}
        self.keys = itertools.count()
        #: The provider's charge keys of this customer when the subscription was cancelled.
        self.charged_before_cancel: set[str] | None = None

    # -- What the customer, the merchant and cron do ------------------------------------

    @rule()
    def fail_renewal(self) -> None:
        status = self._status()
        if status == "cancelled":
            with pytest.raises(portal.InvalidTransition):
                portal.record_failed_renewal(self.subscription, reason="Card declined at renewal")
            return
        portal.record_failed_renewal(self.subscription, reason="Card declined at renewal")
        assert self._status() == "on_hold"

    @rule(
        card=st.sampled_from(sorted(CARDS)),
        fault=st.sampled_from([None, None, None, None, "crash", "timeout"]),
    )
    def update_method(self, card: str, fault: Any) -> None:
        status, in_flight = self._status(), self._in_flight()
        method = self._card(card)
        self.provider.fail_after_charge = fault
        try:
            outcome = payments.change_payment_method(
                self.subscription,
                method,
                idempotency_key=f"{self.customer.public_id}-{next(self.keys)}",
                return_url=PAYMENT_RETURN_URL,
            )
        except portal.ValidationError:
            assert status == "cancelled"
            return
        finally:
            self.provider.fail_after_charge = None
        if status == "active":
            assert outcome.status == "updated" and outcome.payment is None
            assert self._status() == "active"
        elif in_flight is None:
            assert outcome.status == ("pending" if fault else ANSWERS[card])
            assert self._status() == ("active" if outcome.status == "succeeded" else "on_hold")
        else:
            # Another attempt was in flight: its outcome answers, unless it failed meanwhile.
            assert outcome.payment is not None
            assert outcome.payment.id == in_flight.id or (
                in_flight.status == "failed" and outcome.payment.payment_method_id == method.id
            )

    @precondition(lambda self: self._awaiting_challenge() is not None)
    @rule(comes_back=st.booleans())
    def pay_success(self, comes_back: bool) -> None:
        self._answer_challenge(approve=True, comes_back=comes_back)

    @precondition(lambda self: self._awaiting_challenge() is not None)
    @rule(comes_back=st.booleans())
    def pay_failure(self, comes_back: bool) -> None:
        self._answer_challenge(approve=False, comes_back=comes_back)

    @rule()
    def cancel(self) -> None:
        status = self._status()
        if status == "cancelled":
            with pytest.raises(portal.ValidationError):
                portal.cancel_subscription(self.subscription, at_period_end=False)
            return
        portal.cancel_subscription(self.subscription, at_period_end=False)
        self.charged_before_cancel = set(self._charges())
        assert self._status() == "cancelled"

    @rule()
    def reconcile(self) -> None:
        settlement.reconcile(older_than=timedelta(0))

    # -- Invariants -----------------------------------------------------------------------

    @invariant()
    def active_owes_nothing(self) -> None:
        if self._status() == "active":
            assert portal.outstanding_dues(self.subscription) == (0, [])

    @invariant()
    def cancelled_is_never_charged_again(self) -> None:
        if self.charged_before_cancel is not None:
            assert self._status() == "cancelled"
            assert set(self._charges()) == self.charged_before_cancel

    @invariant()
    def charges_equal_the_dues_settled(self) -> None:
        attempts = {p.idempotency_key: p for p in self._attempts()}
        charges = self._charges()
        # Every charge has its attempt, committed before the provider was called (P4).
        assert set(charges) <= set(attempts)
        for key, charge in charges.items():
            attempt = attempts[key]
            assert charge.amount == attempt.amount
            if attempt.status == "succeeded":
                assert charge.status == "succeeded"
            if charge.status == "succeeded":
                assert attempt.status in ("succeeded", "pending", "requires_action")
        charged = sum(
            c.amount
            for key, c in charges.items()
            if c.status == "succeeded" and attempts[key].status == "succeeded"
        )
        paid = self.session.scalars(
            sa.select(m.Invoice).filter_by(customer_id=self.customer.id, status="paid")
        ).all()
        assert charged == sum(invoice.total for invoice in paid)
        assert sorted(i.id for i in paid) == sorted(
            p.invoice_id for p in attempts.values() if p.status == "succeeded"
        )

    @invariant()
    def one_payment_in_flight(self) -> None:
        in_flight = [p for p in self._attempts() if p.status in IN_FLIGHT]
        assert len(in_flight) <= 1

    def teardown(self) -> None:
        # Once the reconciler has run, nothing charged is left unrecorded.
        settlement.reconcile(older_than=timedelta(0))
        attempts = {p.idempotency_key: p for p in self._attempts()}
        for key, charge in self._charges().items():
            if charge.status == "succeeded":
                assert attempts[key].status == "succeeded"

    # -- Helpers --------------------------------------------------------------------------

    def _status(self) -> str:
        self.session.expire_all()
        return self.subscription.status

    def _card(self, kind: str) -> m.PaymentMethod:
        if kind not in self.cards:
            self.cards[kind] = add_card(self.customer, CARDS[kind])
        return self.cards[kind]

    def _attempts(self) -> list[m.Payment]:
        self.session.expire_all()
        return list(
            self.session.scalars(
                sa.select(m.Payment).filter(
                    m.Payment.customer_id == self.customer.id,
                    m.Payment.payment_method_id.is_not(None),
                )
            )
        )

    def _in_flight(self) -> m.Payment | None:
        return next((p for p in self._attempts() if p.status in IN_FLIGHT), None)

    def _awaiting_challenge(self) -> m.Payment | None:
        payment = self._in_flight()
        return payment if payment is not None and payment.status == "requires_action" else None

    def _charges(self) -> dict[str, Any]:
        return {
            key: charge
            for key, charge in list(self.provider.charges.items())
            if charge.customer_ref == self.customer.public_id
        }

    def _answer_challenge(self, *, approve: bool, comes_back: bool) -> None:
        payment = self._awaiting_challenge()
        assert payment is not None and payment.action_url is not None
        charge_id = payment.action_url.rsplit("/", 1)[1]
        self.provider.answer_challenge(charge_id, approve=approve)
        # A challenge answered before (the customer didn't come back) keeps that answer.
        charge = self.provider.get_challenge(charge_id)
        assert charge is not None and charge.status in ("succeeded", "failed")
        if comes_back:
            assert settlement.settle_payment(payment).status == charge.status
