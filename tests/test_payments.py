"""Payments: saving cards, reactivating on-hold subscriptions, settling unknown outcomes.

Everything runs against the embedded test provider (its cards decide outcomes;
``provider.charges`` holds every charge it made, by idempotency key), on
SQLite and PostgreSQL.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
import time_machine
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event
from sqlalchemy.orm import Session

import flask_customer_portal as portal
from flask_customer_portal import cards, emails, payments, settlement, signals
from flask_customer_portal import models as m
from flask_customer_portal.providers import ChargeResult, ProviderError, SavedCard, TestProvider
from flask_customer_portal.subscriptions import add_interval

from .conftest import EXTERNAL_URL, csrf_token, local_mail_app
from .helpers import (
    AUTHENTICATE,
    DECLINED,
    PAYMENT_RETURN_URL,
    SUCCEEDS,
    Received,
    add_card,
    outbox_kinds,
    put_on_hold,
    record_signals,
    stored_rows,
)

SIGNALS = {
    "payment_method_updated": signals.payment_method_updated,
    "payment_succeeded": signals.payment_succeeded,
    "payment_failed": signals.payment_failed,
    "subscription_reactivated": signals.subscription_reactivated,
}


app = local_mail_app  # mail stays in memory, so tests read what was sent


@pytest.fixture
def received(app: Flask) -> Iterator[Received]:
    """Every payment signal the app sends, as (name, keyword arguments by public id)."""
    with record_signals(app, SIGNALS) as seen:
        yield seen


def pay(subscription: m.Subscription, card: m.PaymentMethod, key: str) -> settlement.PaymentOutcome:
    return payments.change_payment_method(
        subscription, card, idempotency_key=key, return_url=PAYMENT_RETURN_URL
    )


def state(session: Session, subscription: m.Subscription) -> dict[str, Any]:
    """What a customer or the merchant could see of a subscription's billing right now."""
    session.expire_all()
    invoices = session.scalars(
        sa.select(m.Invoice).filter_by(subscription_id=subscription.id).order_by(m.Invoice.id)
    ).all()
    attempts = session.scalars(
        sa.select(m.Payment)
        .filter(m.Payment.payment_method_id.is_not(None))
        .filter_by(subscription_id=subscription.id)
        .order_by(m.Payment.id)
    ).all()
    return {
        "status": subscription.status,
        "payment_method_id": subscription.payment_method_id,
        "invoices": [(i.number, i.status, i.total) for i in invoices],
        "attempts": [(p.status, p.amount, p.idempotency_key) for p in attempts],
        "outbox": outbox_kinds(session),
    }


# -- Reactivation ----------------------------------------------------------------------


def test_reactivation_charges_the_dues_once(
    session: Session,
    customer: m.Customer,
    subscription: m.Subscription,
    provider: TestProvider,
    received: Received,
) -> None:
    """P3, P5, P2: one charge of exactly the dues; one paid invoice replaces the dues invoices."""
    old = put_on_hold(subscription, renewals=2)
    card = add_card(customer, SUCCEEDS)
    before = datetime.now(UTC)

    outcome = pay(subscription, card, "key-1")

    assert outcome.status == "succeeded" and outcome.failure_reason is None
    assert provider.charge_count == 1
    charge = provider.charges["key-1"]
    assert (charge.amount, charge.currency, charge.status) == (5800, "USD", "succeeded")
    assert charge.customer_ref == customer.public_id and charge.token == card.provider_token
    assert charge.return_url == PAYMENT_RETURN_URL.replace(
        "{payment_id}", outcome.payment.public_id
    )

    session.expire_all()
    payment, invoice = outcome.payment, outcome.invoice
    assert payment is not None and invoice is not None
    assert (payment.status, payment.amount, payment.idempotency_key) == ("succeeded", 5800, "key-1")
    assert payment.invoice_id == invoice.id and payment.provider_reference == charge.charge_id
    assert (invoice.status, invoice.total, invoice.currency) == ("paid", 5800, "USD")
    assert invoice.paid_at is not None and invoice.subscription_id == subscription.id
    assert [line.amount for line in invoice.lines] == [2900, 2900]
    assert [line.description.split(":")[0] for line in invoice.lines] == [
        f"Invoice {old[0].number}",
        f"Invoice {old[1].number}",
    ]
    assert [i.status for i in old] == ["void", "void"]
    assert portal.outstanding_dues(subscription) == (0, [])

    assert subscription.status == "active" and subscription.payment_method_id == card.id
    assert before <= subscription.current_period_start <= datetime.now(UTC)
    start = subscription.current_period_start
    assert subscription.current_period_end == add_interval(start, "month")
    assert subscription.next_billing_at == subscription.current_period_end

    assert outbox_kinds(session) == ["payment_succeeded", "subscription_reactivated"]
    assert [name for name, _ in received] == [
        "payment_succeeded",
        "payment_method_updated",
        "subscription_reactivated",
    ]
    assert received[0][1] == {
        "customer": customer.public_id,
        "subscription": subscription.public_id,
        "payment": payment.public_id,
        "invoice": invoice.public_id,
    }
    about = {"customer": customer.public_id, "subscription": subscription.public_id}
    assert received[1][1] == {**about, "payment_method": card.public_id}
    assert received[2][1] == {**about, "payment": payment.public_id}

    assert emails.send_queued() == (2, 0)
    reactivated, succeeded = portal.local_messages()
    assert succeeded["subject"] == "Payment received: $58.00"
    assert "$58.00" in succeeded["text"] and invoice.number in succeeded["text"]
    assert "Visa card ending in 4242" in succeeded["text"]
    assert reactivated["subject"] == "Your Acme Cloud Pro subscription is active again"
    assert "$29.00 every month" in reactivated["text"]


@pytest.mark.parametrize(
    ("number", "reason"),
    [
        (DECLINED, "Your card was declined."),
        ("4000 0000 0000 9995", "Your card has insufficient funds."),
        ("4000 0000 0000 0069", "Your card has expired."),
        ("4000 0000 0000 0341", "Your card was declined."),
    ],
)
def test_failed_payment_keeps_it_on_hold_and_a_new_key_retries(
    session: Session,
    customer: m.Customer,
    subscription: m.Subscription,
    provider: TestProvider,
    received: Received,
    number: str,
    reason: str,
) -> None:
    """P2, P3: a failure says why in plain words; a retry is a new attempt with a new key."""
    (old,) = put_on_hold(subscription)
    bad, good = add_card(customer, number), add_card(customer, SUCCEEDS)

    failed = pay(subscription, bad, "key-bad")

    assert (failed.status, failed.failure_reason) == ("failed", reason)
    assert failed.invoice is not None
    seen = state(session, subscription)
    assert seen["status"] == "on_hold" and seen["payment_method_id"] is None
    assert seen["invoices"] == [(old.number, "open", 2900), (failed.invoice.number, "void", 2900)]
    assert seen["attempts"] == [("failed", 2900, "key-bad")]
    assert seen["outbox"] == []
    assert [name for name, _ in received] == ["payment_failed"]
    assert failed.payment is not None
    assert received[0][1] == {
        "customer": customer.public_id,
        "subscription": subscription.public_id,
        "payment": failed.payment.public_id,
        "reason": reason,
    }
    assert portal.outstanding_dues(subscription)[0] == 2900

    # The same key again (a reload) answers the same, without asking for a charge.
    assert pay(subscription, bad, "key-bad").status == "failed"
    assert provider.charge_count == 1

    retried = pay(subscription, good, "key-good")

    assert retried.status == "succeeded" and provider.charge_count == 2
    assert provider.charges["key-good"].amount == 2900
    seen = state(session, subscription)
    assert seen["status"] == "active" and seen["payment_method_id"] == good.id
    assert [status for _, status, _ in seen["invoices"]] == ["void", "void", "paid"]
    assert seen["outbox"] == ["payment_succeeded", "subscription_reactivated"]


def test_active_subscription_only_changes_its_method(
    session: Session,
    customer: m.Customer,
    subscription: m.Subscription,
    provider: TestProvider,
    received: Received,
) -> None:
    """An active subscription is never charged for a change of card."""
    first, second = add_card(customer, SUCCEEDS), add_card(customer, DECLINED)
    period = (subscription.current_period_start, subscription.current_period_end)

    assert pay(subscription, first, "key-1").status == "updated"
    outcome = pay(subscription, second, "key-2")

    assert (outcome.status, outcome.payment, outcome.invoice) == ("updated", None, None)
    assert provider.charge_count == 0
    seen = state(session, subscription)
    assert seen["status"] == "active" and seen["payment_method_id"] == second.id
    assert seen["invoices"] == [] and seen["attempts"] == [] and seen["outbox"] == []
    assert (subscription.current_period_start, subscription.current_period_end) == period
    assert [(name, kwargs["payment_method"]) for name, kwargs in received] == [
        ("payment_method_updated", first.public_id),
        ("payment_method_updated", second.public_id),
    ]


def test_requires_action_then_approved_on_the_challenge_page(
    client: FlaskClient,
    session: Session,
    customer: m.Customer,
    subscription: m.Subscription,
    provider: TestProvider,
) -> None:
    """The bank's challenge: the customer approves, comes back, and the payment is settled."""
    put_on_hold(subscription)
    card = add_card(customer, AUTHENTICATE)

    outcome = pay(subscription, card, "key-3ds")

    assert outcome.status == "requires_action" and outcome.payment is not None
    assert outcome.action_url is not None
    assert outcome.action_url.startswith(EXTERNAL_URL + "/portal/test-provider/challenge/")
    seen = state(session, subscription)
    assert seen["status"] == "on_hold"
    assert seen["attempts"] == [("requires_action", 2900, "key-3ds")]

    # Another tab, another card: the attempt in flight answers; no second charge.
    other = add_card(customer, SUCCEEDS)
    assert pay(subscription, other, "key-tab-2").action_url == outcome.action_url
    assert provider.charge_count == 1

    challenge = client.get(outcome.action_url.removeprefix(EXTERNAL_URL))
    assert challenge.status_code == 200
    answer = client.post(
        outcome.action_url.removeprefix(EXTERNAL_URL),
        data={"csrf_token": csrf_token(challenge.text), "decision": "approve"},
    )
    assert answer.status_code == 303
    assert answer.location == f"{EXTERNAL_URL}/portal/payments/{outcome.payment.public_id}/return"

    settled = settlement.settle_payment(outcome.payment)

    assert settled.status == "succeeded" and provider.charge_count == 1
    seen = state(session, subscription)
    assert seen["status"] == "active" and seen["payment_method_id"] == card.id
    assert seen["attempts"] == [("succeeded", 2900, "key-3ds")]
    assert seen["outbox"] == ["payment_succeeded", "subscription_reactivated"]


def test_requires_action_then_failed(
    session: Session,
    customer: m.Customer,
    subscription: m.Subscription,
    provider: TestProvider,
) -> None:
    """A failed challenge leaves the subscription on hold and free for another attempt."""
    put_on_hold(subscription)
    outcome = pay(subscription, add_card(customer, AUTHENTICATE), "key-3ds")
    assert outcome.payment is not None and outcome.action_url is not None
    provider.answer_challenge(outcome.action_url.rsplit("/", 1)[1], approve=False)

    settled = settlement.settle_pending(customer)

    assert [(o.status, o.failure_reason) for o in settled] == [
        ("failed", "The bank declined the authentication.")
    ]
    assert state(session, subscription)["status"] == "on_hold"
    assert pay(subscription, add_card(customer, SUCCEEDS), "key-2").status == "succeeded"
    assert provider.charge_count == 2


def test_a_renewal_that_failed_while_the_bank_waited_is_still_owed(
    session: Session,
    customer: m.Customer,
    subscription: m.Subscription,
    provider: TestProvider,
    received: Received,
) -> None:
    """P2: an approved challenge pays the dues open when the attempt began, no more: a
    renewal that failed meanwhile stays open, and the subscription stays on hold."""
    (old,) = put_on_hold(subscription)
    card = add_card(customer, AUTHENTICATE)
    waiting = pay(subscription, card, "key-3ds")
    assert waiting.status == "requires_action" and waiting.action_url is not None
    assert waiting.payment is not None and waiting.invoice is not None
    newer = portal.record_failed_renewal(subscription, reason="Card declined at renewal")
    provider.answer_challenge(waiting.action_url.rsplit("/", 1)[1], approve=True)

    settled = settlement.settle_payment(waiting.payment)

    assert settled.status == "succeeded" and provider.charge_count == 1
    assert provider.charges["key-3ds"].amount == 2900
    seen = state(session, subscription)
    assert seen["status"] == "on_hold"
    assert seen["invoices"] == [
        (old.number, "void", 2900),
        (waiting.invoice.number, "paid", 2900),
        (newer.number, "open", 2900),
    ]
    assert portal.outstanding_dues(subscription) == (2900, [newer])
    assert seen["payment_method_id"] == card.id
    assert seen["outbox"] == ["payment_succeeded"]
    assert [name for name, _ in received] == ["payment_succeeded", "payment_method_updated"]


@pytest.mark.parametrize(("interval", "count"), [("year", 1), ("month", 3), ("week", 2)])
def test_a_reactivated_subscription_starts_a_period_of_its_own_length(
    customer: m.Customer, provider: TestProvider, interval: str, count: int
) -> None:
    """A yearly plan paid again runs a year from the payment; one billed every three
    months, three months; every two weeks, two weeks."""
    subscription = portal.start_subscription(
        customer,
        product="Acme Cloud",
        price=2900,
        currency="USD",
        interval=interval,
        interval_count=count,
    )
    put_on_hold(subscription)

    assert pay(subscription, add_card(customer, SUCCEEDS), "key-1").status == "succeeded"

    start = subscription.current_period_start
    assert subscription.current_period_end == add_interval(start, interval, count)
    assert subscription.next_billing_at == subscription.current_period_end


def test_a_payment_completed_after_the_merchant_ended_the_plan_is_flagged_for_a_refund(
    session: Session,
    customer: m.Customer,
    subscription: m.Subscription,
    provider: TestProvider,
    received: Received,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """P2: the merchant ended the plan while the bank waited, then the challenge was approved:
    the payment is recorded and announced, the plan stays ended, and the log names the payment
    and the plan for the merchant to refund."""
    put_on_hold(subscription)
    waiting = pay(subscription, add_card(customer, AUTHENTICATE), "key-3ds")
    assert waiting.payment is not None and waiting.action_url is not None
    portal.transition(subscription, "expired")
    session.commit()
    provider.answer_challenge(waiting.action_url.rsplit("/", 1)[1], approve=True)

    settled = settlement.settle_payment(waiting.payment)

    assert settled.status == "succeeded" and provider.charge_count == 1
    seen = state(session, subscription)
    assert seen["status"] == "expired" and seen["payment_method_id"] is None
    assert seen["outbox"] == ["payment_succeeded"]
    assert [name for name, _ in received] == ["payment_succeeded"]
    assert received[0][1]["payment"] == waiting.payment.public_id
    assert (
        f"payment {waiting.payment.public_id} succeeded after subscription "
        f"{subscription.public_id} became expired: refund it if it is not owed"
    ) in [record.getMessage() for record in caplog.records]


# -- Never charge twice ------------------------------------------------------------------


def test_double_submit_with_the_same_key_charges_once(
    session: Session, customer: m.Customer, subscription: m.Subscription, provider: TestProvider
) -> None:
    """P3: a double click or a reload posts the same key: one charge, the same answer."""
    put_on_hold(subscription)
    card = add_card(customer, SUCCEEDS)

    first = pay(subscription, card, "key-1")
    again = pay(subscription, card, "key-1")
    direct = payments.reactivate_subscription(
        subscription, card, idempotency_key="key-1", return_url=PAYMENT_RETURN_URL
    )

    assert first.payment is not None and again.payment is not None and direct.payment is not None
    assert first.status == again.status == direct.status == "succeeded"
    assert first.payment.id == again.payment.id == direct.payment.id
    assert provider.charge_count == 1
    seen = state(session, subscription)
    assert seen["attempts"] == [("succeeded", 2900, "key-1")]
    assert seen["outbox"] == ["payment_succeeded", "subscription_reactivated"]


def test_a_key_of_another_subscription_is_refused(
    customer: m.Customer, subscription: m.Subscription, provider: TestProvider
) -> None:
    """P3: an idempotency key names one attempt; it cannot answer for another subscription."""
    put_on_hold(subscription)
    card = add_card(customer, SUCCEEDS)
    other = portal.start_subscription(customer, product="Acme Backup", price=500, currency="USD")
    put_on_hold(other)
    assert pay(subscription, card, "key-1").status == "succeeded"

    with pytest.raises(portal.ValidationError) as error:
        pay(other, card, "key-1")

    assert error.value.field == "idempotency_key" and provider.charge_count == 1


@pytest.mark.parametrize("failure", ["crash", "timeout"])
@pytest.mark.parametrize("settle", ["reconcile", "next_visit", "reload", "second_tab"])
def test_unknown_outcome_is_settled_with_the_same_key(
    session: Session,
    customer: m.Customer,
    subscription: m.Subscription,
    provider: TestProvider,
    received: Received,
    caplog: pytest.LogCaptureFixture,
    failure: Any,
    settle: str,
) -> None:
    """P4: the provider charged, then crashed or timed out: settled later, never charged again."""
    put_on_hold(subscription)
    card = add_card(customer, SUCCEEDS)
    provider.fail_after_charge = failure

    outcome = pay(subscription, card, "key-1")

    assert outcome.status == "pending" and outcome.payment is not None
    assert provider.charge_count == 1 and provider.charges["key-1"].status == "succeeded"
    seen = state(session, subscription)
    assert seen["status"] == "on_hold" and seen["attempts"] == [("pending", 2900, "key-1")]
    assert seen["invoices"][1][1] == "draft" and seen["outbox"] == [] and received == []
    assert "settled later" in caplog.text

    if settle == "reconcile":
        assert settlement.reconcile() == 0  # too recent: its request may still be running
        with time_machine.travel(datetime.now(UTC) + timedelta(minutes=2)):
            assert settlement.reconcile() == 1
    elif settle == "next_visit":
        assert [o.status for o in settlement.settle_pending(customer)] == ["succeeded"]
    else:
        # A reload posts the same key; a second tab a new one: both learn the outcome.
        assert pay(subscription, card, "key-1" if settle == "reload" else "key-2").status == (
            "succeeded"
        )

    assert provider.charge_count == 1 and list(provider.charges) == ["key-1"]
    seen = state(session, subscription)
    assert seen["status"] == "active" and seen["payment_method_id"] == card.id
    assert seen["attempts"] == [("succeeded", 2900, "key-1")]
    assert [status for _, status, _ in seen["invoices"]] == ["void", "paid"]
    assert seen["outbox"] == ["payment_succeeded", "subscription_reactivated"]
    assert [name for name, _ in received] == [
        "payment_succeeded",
        "payment_method_updated",
        "subscription_reactivated",
    ]
    assert settlement.reconcile(older_than=timedelta(0)) == 0


@pytest.mark.parametrize(
    ("number", "answer"), [(SUCCEEDS, "succeeded"), (DECLINED, "failed")], ids=["paid", "declined"]
)
def test_an_answer_recorded_twice_counts_once(
    session: Session,
    customer: m.Customer,
    subscription: m.Subscription,
    provider: TestProvider,
    received: Received,
    caplog: pytest.LogCaptureFixture,
    number: str,
    answer: str,
) -> None:
    """P3, P4: the reconciler and the customer coming back both learned the provider's answer;
    the second to record it changes nothing: no second email, signal or period, no alarm."""
    put_on_hold(subscription)
    provider.fail_after_charge = "timeout"
    outcome = pay(subscription, add_card(customer, number), "key-1")
    assert outcome.status == "pending" and outcome.payment is not None
    result = provider.lookup(idempotency_key="key-1")
    assert result is not None and result.status == answer

    first = settlement.record_result(outcome.payment, result)
    after_first = state(session, subscription)
    period = (subscription.current_period_start, subscription.current_period_end)
    heard = list(received)
    again = settlement.record_result(outcome.payment, result)

    assert first.status == again.status == answer
    assert state(session, subscription) == after_first
    assert (subscription.current_period_start, subscription.current_period_end) == period
    assert received == heard
    assert [name for name, _ in received].count(f"payment_{answer}") == 1
    assert after_first["outbox"] == (
        ["payment_succeeded", "subscription_reactivated"] if answer == "succeeded" else []
    )
    assert provider.charge_count == 1
    assert "refund it" not in caplog.text


def test_settling_one_attempt_leaves_every_other_attempt_as_it_is(
    session: Session,
    business: m.Business,
    customer: m.Customer,
    subscription: m.Subscription,
    provider: TestProvider,
) -> None:
    """P2: Ana's approved challenge settles Ana's attempt and invoice, nobody else's: Bruno's
    attempt still waits for his bank, his invoice is still a draft, his plan still on hold."""
    bruno = portal.upsert_customer(business, "bruno@example.com")
    plans = [
        subscription,
        portal.start_subscription(bruno, product="Acme Cloud", price=2900, currency="USD"),
    ]
    waiting = []
    for plan, key in zip(plans, ("key-ana", "key-bruno"), strict=True):
        put_on_hold(plan)
        waiting.append(pay(plan, add_card(plan.customer, AUTHENTICATE), key))
    ana, bruno_waits = waiting
    assert ana.action_url is not None and ana.payment is not None
    provider.answer_challenge(ana.action_url.rsplit("/", 1)[1], approve=True)

    assert settlement.settle_payment(ana.payment).status == "succeeded"

    seen = state(session, plans[1])
    assert seen["status"] == "on_hold"
    assert seen["attempts"] == [("requires_action", 2900, "key-bruno")]
    assert bruno_waits.invoice is not None
    assert (bruno_waits.invoice.number, "draft", 2900) in seen["invoices"]
    assert state(session, plans[0])["status"] == "active"


def test_the_reconciler_leaves_the_merchants_own_pending_payments_alone(
    session: Session, customer: m.Customer, subscription: m.Subscription, provider: TestProvider
) -> None:
    """P4: a payment the merchant recorded as pending (their processor, their key) is theirs to
    settle: the portal never looks it up, nor calls it "not charged", however old it is."""
    (dues,) = put_on_hold(subscription)
    theirs = portal.record_payment(
        customer,
        amount=2900,
        currency="USD",
        invoice=dues,
        status="pending",
        idempotency_key="merchant-key-1",
    )

    with time_machine.travel(datetime.now(UTC) + timedelta(hours=1)):
        assert settlement.reconcile() == 0
        assert settlement.settle_pending(customer) == []

    session.refresh(theirs)
    assert (theirs.status, theirs.failure_reason) == ("pending", None)


#: A bank's challenge page whose address holds a long run of digits (an id, not a card).
BANK_PAGE = "https://bank.example/3ds/4242424242424242"


@pytest.mark.parametrize(
    ("answer", "recorded"),
    [
        (
            ChargeResult("failed", reference="r" * 300, failure_reason="x" * 600),
            ("failed", "x" * 500, "r" * 255, None),
        ),
        (ChargeResult("failed"), ("failed", "The payment failed.", None, None)),
        (
            ChargeResult("requires_action", reference="ch_1", action_url=BANK_PAGE),
            ("requires_action", None, "ch_1", BANK_PAGE),
        ),
        (
            ChargeResult("requires_action", action_url="https://bank.example/" + "a" * 1980),
            ("pending", None, None, None),
        ),
    ],
    ids=["long", "no reason", "digits in the bank's page", "bank's page too long"],
)
def test_a_providers_answer_is_kept_as_the_columns_can_hold_it(
    session: Session,
    customer: m.Customer,
    subscription: m.Subscription,
    provider: TestProvider,
    answer: ChargeResult,
    recorded: tuple[str, str | None, str | None, str | None],
) -> None:
    """A provider's overlong reason or reference is cut to its column; no reason reads "The
    payment failed."; a challenge page is kept whatever digits it holds, but one over 2000
    characters is not an answer: the attempt stays pending, to be settled later."""
    put_on_hold(subscription)
    provider.fail_after_charge = "timeout"
    outcome = pay(subscription, add_card(customer, SUCCEEDS), "key-1")
    assert outcome.payment is not None

    settled = settlement.record_result(outcome.payment, answer)

    payment = settled.payment
    assert payment is not None
    kept = (payment.status, payment.failure_reason, payment.provider_reference, payment.action_url)
    assert kept == recorded


class UnreachableProvider(TestProvider):
    """A test provider that charge requests (or look-ups) don't reach until told."""

    reachable = False
    lookups_reachable = True

    def charge(self, **kwargs: Any) -> Any:
        if not self.reachable:
            raise ProviderError("connection refused")
        return super().charge(**kwargs)

    def lookup(self, *, idempotency_key: str) -> Any:
        if not self.lookups_reachable:
            raise ProviderError("connection refused")
        return super().lookup(idempotency_key=idempotency_key)

    def cancel_charge(self, *, idempotency_key: str) -> Any:
        if not self.lookups_reachable:
            raise ProviderError("connection refused")
        return super().cancel_charge(idempotency_key=idempotency_key)


#: An unreachable provider, the app's session, a subscription on hold and a card.
Unreachable = tuple[UnreachableProvider, Session, m.Subscription, m.PaymentMethod]


@pytest.fixture
def unreachable(database_url: str, app_factory: Callable[..., Flask]) -> Iterator[Unreachable]:
    """Bruno's subscription on hold and his card, in an app whose provider is unreachable."""
    provider = UnreachableProvider()
    app = app_factory(database_url, portal_options={"test_provider": provider})
    with app.app_context():
        business = portal.create_business("Acme Cloud", public_id="acme")
        customer = portal.upsert_customer(business, "bruno@example.com")
        subscription = portal.start_subscription(
            customer, product="Acme Cloud", price=2900, currency="USD"
        )
        put_on_hold(subscription)
        session = app.extensions["customer_portal"].session
        yield provider, session, subscription, add_card(customer, SUCCEEDS)


def test_an_attempt_the_provider_never_saw_fails_after_the_grace_period(
    unreachable: Unreachable,
) -> None:
    """P4: no charge under the key: pending for NOT_CHARGED_AFTER, to the second; then failed,
    telling the customer they were not charged; a retry works."""
    provider, session, subscription, card = unreachable
    start = datetime.now(UTC) + timedelta(minutes=1)
    with time_machine.travel(start, tick=False):
        assert pay(subscription, card, "key-1").status == "pending"
        assert settlement.reconcile(older_than=timedelta(0)) == 0
    with time_machine.travel(
        start + settlement.NOT_CHARGED_AFTER - timedelta(seconds=1), tick=False
    ):
        assert settlement.reconcile() == 0
    with time_machine.travel(start + settlement.NOT_CHARGED_AFTER, tick=False):
        assert settlement.reconcile() == 1

    seen = state(session, subscription)
    assert seen["status"] == "on_hold" and seen["attempts"] == [("failed", 2900, "key-1")]
    assert [status for _, status, _ in seen["invoices"]] == ["open", "void"]
    attempt = session.scalars(sa.select(m.Payment).filter_by(idempotency_key="key-1")).one()
    assert attempt.failure_reason == settlement.NOT_CHARGED
    assert "you were not charged" in settlement.outcome(attempt).failure_reason
    provider.reachable = True
    assert pay(subscription, card, "key-2").status == "succeeded"
    assert provider.charge_count == 1


def test_while_the_provider_cannot_be_reached_an_attempt_stays_pending(
    unreachable: Unreachable,
) -> None:
    """P4: the charge was made but its answer lost, and the provider is down when the customer
    comes back: the attempt stays pending, nothing is recorded; settled once it answers."""
    provider, session, subscription, card = unreachable
    provider.reachable, provider.fail_after_charge = True, "timeout"
    assert pay(subscription, card, "key-1").status == "pending"
    provider.lookups_reachable = False

    assert [o.status for o in settlement.settle_pending(subscription.customer)] == ["pending"]
    assert settlement.reconcile(older_than=timedelta(0)) == 0
    assert state(session, subscription)["attempts"] == [("pending", 2900, "key-1")]

    provider.lookups_reachable = True
    assert [o.status for o in settlement.settle_pending(subscription.customer)] == ["succeeded"]
    assert provider.charge_count == 1
    assert state(session, subscription)["status"] == "active"


def test_a_charge_reported_after_the_attempt_was_given_up_is_flagged_for_a_refund(
    unreachable: Unreachable, caplog: pytest.LogCaptureFixture
) -> None:
    """P4: an attempt settled as "not charged", then the provider says it charged after all:
    nothing the customer sees changes, and the log names the payment to refund."""
    provider, session, subscription, card = unreachable
    attempt = pay(subscription, card, "key-1").payment
    assert attempt is not None
    with time_machine.travel(datetime.now(UTC) + settlement.NOT_CHARGED_AFTER * 2):
        assert settlement.reconcile() == 1
    before = state(session, subscription)

    late = settlement.record_result(attempt, ChargeResult("succeeded", reference="ch_late"))

    assert late.status == "failed"
    assert state(session, subscription) == before
    assert f"payment {attempt.public_id} is failed but the provider charged it: refund it" in [
        record.getMessage() for record in caplog.records
    ]


# -- Atomicity (D3) ---------------------------------------------------------------------


def _fail_outbox_insert(app: Flask) -> tuple[Any, str, Callable[..., None]]:
    def refuse(*args: Any) -> None:
        raise RuntimeError("injected fault: the outbox is unavailable")

    return m.OutboxMessage, "before_insert", refuse


def _fail_reactivation_update(app: Flask) -> tuple[Any, str, Callable[..., None]]:
    def refuse(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        if statement.startswith("UPDATE portal_subscriptions") and "'active'" in repr(parameters):
            raise RuntimeError("injected fault: the subscription update failed")

    return app.extensions["customer_portal"].engine, "before_cursor_execute", refuse


@pytest.mark.parametrize("fault", [_fail_outbox_insert, _fail_reactivation_update])
def test_a_fault_while_recording_success_leaves_nothing_half_done(
    app: Flask,
    session: Session,
    customer: m.Customer,
    subscription: m.Subscription,
    provider: TestProvider,
    received: Received,
    caplog: pytest.LogCaptureFixture,
    fault: Callable[[Flask], tuple[Any, str, Callable[..., None]]],
) -> None:
    """D3, P4: the provider charged, recording it failed: all of it rolls back, then settles."""
    put_on_hold(subscription)
    card = add_card(customer, SUCCEEDS)
    before = state(session, subscription)
    target, name, listener = fault(app)
    event.listen(target, name, listener)
    try:
        with caplog.at_level(logging.ERROR):
            outcome = pay(subscription, card, "key-1")
    finally:
        event.remove(target, name, listener)

    assert outcome.status == "pending" and "injected fault" in caplog.text
    assert outcome.payment is not None
    assert (
        f"payment {outcome.payment.public_id}: recording the provider's answer failed; "
        "it is settled later"
    ) in [record.getMessage() for record in caplog.records]
    seen = state(session, subscription)
    assert seen["status"] == "on_hold" and seen["payment_method_id"] is None
    assert seen["attempts"] == [("pending", 2900, "key-1")]
    assert seen["invoices"] == before["invoices"] + [(outcome.invoice.number, "draft", 2900)]
    assert seen["outbox"] == [] and received == []

    assert [o.status for o in settlement.settle_pending(customer)] == ["succeeded"]

    assert provider.charge_count == 1
    seen = state(session, subscription)
    assert seen["status"] == "active" and seen["payment_method_id"] == card.id
    assert [status for _, status, _ in seen["invoices"]] == ["void", "paid"]
    assert seen["outbox"] == ["payment_succeeded", "subscription_reactivated"]
    assert len(received) == 3


# -- What is never charged ---------------------------------------------------------------


def test_a_cancelled_subscription_is_never_charged(
    session: Session, customer: m.Customer, subscription: m.Subscription, provider: TestProvider
) -> None:
    """P2: once cancelled, no way of paying reaches the provider."""
    put_on_hold(subscription)
    card = add_card(customer, SUCCEEDS)
    portal.cancel_subscription(subscription, at_period_end=False)

    with pytest.raises(portal.ValidationError):
        pay(subscription, card, "key-1")
    with pytest.raises(portal.InvalidTransition):
        payments.reactivate_subscription(
            subscription, card, idempotency_key="key-2", return_url=PAYMENT_RETURN_URL
        )

    assert provider.charge_count == 0
    seen = state(session, subscription)
    assert seen["status"] == "cancelled" and seen["attempts"] == []
    assert seen["payment_method_id"] is None


def test_someone_elses_card_is_refused(
    business: m.Business, customer: m.Customer, subscription: m.Subscription, provider: TestProvider
) -> None:
    """Z1: a subscription is paid only with its own customer's card."""
    put_on_hold(subscription)
    other = portal.upsert_customer(business, "carla@example.com")
    card = add_card(other, SUCCEEDS)

    with pytest.raises(portal.ValidationError) as error:
        pay(subscription, card, "key-1")

    assert error.value.field == "payment_method" and provider.charge_count == 0


def test_amount_comes_from_the_dues_not_the_form(
    client: FlaskClient,
    session: Session,
    signed_in: m.Customer,
    subscription: m.Subscription,
    provider: TestProvider,
) -> None:
    """P5: integer minor units computed on the server; an amount posted with the form is ignored."""
    put_on_hold(subscription)
    portal.issue_invoice(
        signed_in,
        [{"description": "Extra seats", "unit_amount": 1000, "quantity": 3}],
        currency="USD",
        tax=333,
        subscription=subscription,
    )
    card = add_card(signed_in, SUCCEEDS)
    url = f"/portal/subscriptions/{subscription.public_id}/payment-method"
    page = client.get(url)
    key = page.text.split('name="idempotency_key" value="', 1)[1].split('"', 1)[0]

    response = client.post(
        url,
        data={
            "csrf_token": csrf_token(page.text),
            "payment_method": card.public_id,
            "idempotency_key": key,
            "amount": "1",
        },
    )

    assert response.status_code == 303
    assert provider.charge_count == 1
    (charge,) = provider.charges.values()
    assert charge.amount == 2900 + 3000 + 333 and isinstance(charge.amount, int)
    session.expire_all()
    payment = session.scalars(sa.select(m.Payment).filter_by(status="succeeded")).one()
    assert payment.amount == 6233 and payment.invoice is not None
    invoice = payment.invoice
    assert (invoice.subtotal, invoice.tax, invoice.total) == (5900, 333, 6233)
    assert response.location.endswith(f"/portal/payments/{payment.public_id}")


# -- Saved cards (P1) --------------------------------------------------------------------


@pytest.mark.parametrize(
    "token", ["4242424242424242", "4242 4242 4242 4242", "tok_4000002760003184"]
)
def test_save_card_refuses_a_card_number_as_token(
    session: Session, customer: m.Customer, token: str
) -> None:
    """P1: only a provider token is stored, never something that looks like a card number."""
    with pytest.raises(portal.ValidationError) as error:
        cards.save_card(customer, SavedCard(token, "visa", "4242", 12, 2034))

    assert error.value.field == "provider_token"
    assert session.scalars(sa.select(m.PaymentMethod)).all() == []


def test_save_card_keeps_one_row_per_token_and_a_default(customer: m.Customer) -> None:
    """Saving a card twice gives the same row; the first card is the default."""
    card = SavedCard("card_abc", "visa", "4242", 12, 2034)
    first = cards.save_card(customer, card)
    again = cards.save_card(customer, card)
    second = cards.save_card(customer, SavedCard("card_def", "visa", "0002", 1, 2030))

    assert first.id == again.id and first.is_default and not second.is_default
    assert [c.public_id for c in cards.list_payment_methods(customer)] == [
        first.public_id,
        second.public_id,
    ]
    assert cards.get_card(customer, second.public_id) == second


@pytest.mark.parametrize(
    "card",
    [
        SavedCard("card_1", "visa", "42424", 12, 2034),
        SavedCard("card_1", "visa", "abcd", 12, 2034),
        SavedCard("card_1", "visa", "4242", 13, 2034),
        SavedCard("card_1", "", "4242", 12, 2034),
    ],
)
def test_save_card_validates(customer: m.Customer, card: SavedCard) -> None:
    with pytest.raises(portal.ValidationError):
        cards.save_card(customer, card)


def test_finish_card_setup_takes_only_the_customers_own_setup(
    business: m.Business, customer: m.Customer, provider: TestProvider
) -> None:
    """Z1: a setup id of another customer, or an unfinished one, saves nothing."""
    other = portal.upsert_customer(business, "carla@example.com")
    url = cards.begin_card_setup(other, return_url=EXTERNAL_URL + "/back")
    setup_id = url.rsplit("/", 1)[1]

    with pytest.raises(portal.ValidationError):
        cards.finish_card_setup(other, {"setup_id": setup_id})  # not finished yet
    provider.save_card(setup_id, number=SUCCEEDS, expiry="12/34", cvc="123")
    with pytest.raises(portal.ValidationError):
        cards.finish_card_setup(customer, {"setup_id": setup_id})

    assert cards.list_payment_methods(customer) == []
    assert cards.finish_card_setup(other, {"setup_id": setup_id}).last4 == "4242"


def test_no_column_or_log_line_holds_a_card_number(
    session: Session,
    customer: m.Customer,
    subscription: m.Subscription,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """P1: after cards are added and charged, no table and no log line holds a number."""
    put_on_hold(subscription)
    numbers = [AUTHENTICATE, DECLINED, SUCCEEDS]
    with caplog.at_level(logging.DEBUG):
        for n, number in enumerate(numbers):
            pay(subscription, add_card(customer, number), f"key-{n}")

    session.expire_all()
    dump = [row for _, row in stored_rows(session)]
    text = "\n".join(dump) + caplog.text
    for number in numbers:
        digits = number.replace(" ", "")
        assert digits not in text and number not in text


# -- The command ---------------------------------------------------------------------------


def test_flask_portal_reconcile(
    app: Flask,
    session: Session,
    customer: m.Customer,
    subscription: m.Subscription,
    provider: TestProvider,
) -> None:
    """P4: ``flask portal reconcile`` settles unknown attempts and says how many."""
    put_on_hold(subscription)
    card = add_card(customer, SUCCEEDS)
    provider.fail_after_charge = "timeout"
    assert pay(subscription, card, "key-1").status == "pending"
    provider.fail_after_charge = None
    runner = app.test_cli_runner()

    assert runner.invoke(args=["portal", "reconcile"]).output == "Settled 0 payment attempts.\n"
    result = runner.invoke(args=["portal", "reconcile", "--older-than", "0"])

    assert result.exit_code == 0 and result.output == "Settled 1 payment attempt.\n"
    assert provider.charge_count == 1
    assert state(session, subscription)["status"] == "active"
    assert len(portal.local_messages()) == 2  # the command sends its mail before it ends


def test_cancelling_closes_a_challenge_at_the_provider(
    session: Session,
    customer: m.Customer,
    subscription: m.Subscription,
    provider: TestProvider,
) -> None:
    """P2: a payment waiting for the bank when the plan is cancelled is closed at the
    provider: approving the challenge afterwards takes no money and reactivates nothing."""
    put_on_hold(subscription)
    outcome = pay(subscription, add_card(customer, AUTHENTICATE), "key-3ds")
    assert outcome.payment is not None and outcome.action_url is not None
    portal.cancel_subscription(subscription, at_period_end=False)
    assert provider.charges["key-3ds"].status == "failed"
    provider.answer_challenge(outcome.action_url.rsplit("/", 1)[1], approve=True)

    settled = settlement.settle_payment(outcome.payment)

    assert settled.status == "failed" and provider.charges["key-3ds"].status == "failed"
    assert settled.failure_reason is not None and "not charged" in settled.failure_reason
    seen = state(session, subscription)
    assert seen["status"] == "cancelled" and seen["payment_method_id"] is None
    assert [status for _, status, _ in seen["invoices"]] == ["void", "void"]
    assert seen["outbox"] == ["subscription_cancelled"]


def test_a_challenge_approved_just_before_cancelling_is_kept_and_flagged(
    session: Session,
    customer: m.Customer,
    subscription: m.Subscription,
    provider: TestProvider,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """P2: a charge the bank approved before the cancellation reached the provider is
    recorded as it is, the subscription stays cancelled, and the merchant is told to refund."""
    put_on_hold(subscription)
    outcome = pay(subscription, add_card(customer, AUTHENTICATE), "key-3ds")
    assert outcome.payment is not None and outcome.action_url is not None
    provider.answer_challenge(outcome.action_url.rsplit("/", 1)[1], approve=True)
    portal.cancel_subscription(subscription, at_period_end=False)

    settled = settlement.settle_payment(outcome.payment)

    assert settled.status == "succeeded" and provider.charge_count == 1
    seen = state(session, subscription)
    assert seen["status"] == "cancelled" and seen["payment_method_id"] is None
    assert [status for _, status, _ in seen["invoices"]] == ["void", "paid"]
    assert seen["outbox"] == ["subscription_cancelled", "payment_succeeded"]
    assert "refund it if it is not owed" in caplog.text


def test_a_challenge_left_waiting_is_closed_after_the_action_timeout(
    app: Flask,
    session: Session,
    customer: m.Customer,
    subscription: m.Subscription,
    provider: TestProvider,
) -> None:
    """P4: a customer who abandons 3-D Secure is not sent back to it forever: after
    CUSTOMER_PORTAL_ACTION_TIMEOUT the charge is closed at the provider and the attempt
    fails, so a new one can be made; before it, the attempt stays waiting."""
    put_on_hold(subscription)
    timeout = timedelta(seconds=app.config["CUSTOMER_PORTAL_ACTION_TIMEOUT"])
    card = add_card(customer, AUTHENTICATE)
    start = datetime.now(UTC)
    with time_machine.travel(start, tick=False):
        outcome = pay(subscription, card, "key-3ds")
    assert outcome.status == "requires_action" and outcome.payment is not None
    with time_machine.travel(start + timeout, tick=False):
        assert settlement.reconcile() == 0, "waiting exactly the time-out is still waiting"
        assert provider.charges["key-3ds"].status == "requires_action"
    with time_machine.travel(start + timeout + timedelta(seconds=1), tick=False):
        assert settlement.reconcile() == 1
    assert provider.charges["key-3ds"].status == "failed"
    session.refresh(outcome.payment)
    assert outcome.payment.status == "failed"
    challenge = outcome.action_url
    assert challenge is not None
    provider.answer_challenge(challenge.rsplit("/", 1)[1], approve=True)
    assert provider.charges["key-3ds"].status == "failed", "a closed charge stays closed"
    retried = pay(subscription, add_card(customer, SUCCEEDS), "key-2")
    assert retried.status == "succeeded" and state(session, subscription)["status"] == "active"


def test_cancelling_fails_an_attempt_the_provider_never_saw(unreachable: Unreachable) -> None:
    """P4: the charge request never reached the provider; the plan is cancelled: the
    provider says there is no such charge, and the attempt fails at once, "not charged"."""
    provider, session, subscription, card = unreachable
    assert pay(subscription, card, "key-1").status == "pending"
    portal.cancel_subscription(subscription, at_period_end=False)
    seen = state(session, subscription)
    assert seen["status"] == "cancelled" and seen["attempts"] == [("failed", 2900, "key-1")]
    attempt = session.scalars(sa.select(m.Payment).filter_by(idempotency_key="key-1")).one()
    assert attempt.failure_reason == settlement.NOT_CHARGED and provider.charge_count == 0


def test_cancelling_while_the_provider_is_down_leaves_the_attempt_to_the_reconciler(
    unreachable: Unreachable,
) -> None:
    """P4: the provider cannot be reached to close the attempt: it stays pending (its outcome
    is unknown), and the reconciler settles it once the provider answers."""
    provider, session, subscription, card = unreachable
    provider.reachable, provider.fail_after_charge = True, "timeout"
    assert pay(subscription, card, "key-1").status == "pending"
    provider.lookups_reachable = False
    portal.cancel_subscription(subscription, at_period_end=False)
    assert state(session, subscription)["attempts"] == [("pending", 2900, "key-1")]
    provider.lookups_reachable, provider.fail_after_charge = True, None
    assert settlement.reconcile(older_than=timedelta(0)) == 1
    seen = state(session, subscription)
    assert seen["status"] == "cancelled" and seen["attempts"] == [("succeeded", 2900, "key-1")]
