"""How a charge ended: recording the provider's answer, settling attempts left unknown.

Whoever learns the outcome of an attempt first (the request that charged, the
customer coming back from the bank, ``flask portal reconcile``) records it with
one conditional UPDATE; the others read what was recorded. An attempt whose
outcome is unknown is only ever looked up at the provider with its own
idempotency key, never charged again (P3, P4).

Who commits: every public function here commits. Signals are sent after the
commit, with the app as sender.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from flask import current_app
from sqlalchemy import Select, select, update

from . import audit, emails, signals
from . import validation as v
from .billing import outstanding_dues, void_dues
from .config import config_value
from .db import utcnow
from .models import IN_FLIGHT, Customer, Invoice, Payment, Subscription
from .proration import add_interval
from .providers.base import ChargeResult, ProviderError
from .proxies import portal, provider_for, update_one, update_rows
from .subscriptions import set_payment_method, transition

#: How long an attempt the provider has no record of stays "pending" before it
#: is settled as never charged: longer than any provider call can take, so a
#: charge still on its way is never given up.
NOT_CHARGED_AFTER = timedelta(minutes=5)

#: What the customer reads when an attempt ended without reaching the provider.
NOT_CHARGED = "The payment could not be completed and you were not charged. Please try again."


@dataclass(frozen=True)
class PaymentOutcome:
    """What came of changing a payment method or paying the dues.

    ``status``: ``"updated"`` (only the method changed), ``"succeeded"``,
    ``"failed"`` (``failure_reason`` says why, for the customer),
    ``"requires_action"`` (send the customer to ``action_url``) or
    ``"pending"`` (the provider's answer is unknown; it is settled later).
    """

    status: Literal["updated", "succeeded", "failed", "requires_action", "pending"]
    #: The subscription paid for (a one-off invoice's payment: its invoice's, or none).
    subscription: Subscription | None
    payment: Payment | None = None
    invoice: Invoice | None = None
    failure_reason: str | None = None
    action_url: str | None = None


def outcome(payment: Payment) -> PaymentOutcome:
    """Return what the portal's payment attempt ``payment`` has come to, as recorded."""
    status: Any = payment.status
    assert payment.invoice is not None, "not one of the portal's attempts"
    return PaymentOutcome(
        status,
        payment.subscription or payment.invoice.subscription,
        payment=payment,
        invoice=payment.invoice,
        failure_reason=payment.failure_reason if payment.status == "failed" else None,
        action_url=payment.action_url if payment.status == "requires_action" else None,
    )


def settle_payment(payment: Payment) -> PaymentOutcome:
    """Find out how an attempt ended from the provider (same key) and record it; commit.

    A final attempt just returns its outcome. The provider is only asked to
    look the key up, never to charge. An attempt it has no record of is
    settled as failed ("not charged") once older than :data:`NOT_CHARGED_AFTER`;
    until then it stays pending. One that has waited for the customer's bank
    longer than ``CUSTOMER_PORTAL_ACTION_TIMEOUT`` is closed at the provider
    (:meth:`~.providers.PaymentProvider.cancel_charge`): the customer is never
    sent back to a challenge they abandoned.
    """
    if payment.status not in IN_FLIGHT:
        return outcome(payment)
    assert payment.idempotency_key is not None
    provider = provider_for(payment.customer.mode)
    waited = utcnow() - payment.updated_at
    try:
        if payment.status == "requires_action" and waited > _action_timeout():
            result = provider.cancel_charge(idempotency_key=payment.idempotency_key)
        else:
            result = provider.lookup(idempotency_key=payment.idempotency_key)
    except ProviderError:
        return outcome(payment)
    if result is None:
        if utcnow() - payment.created_at < NOT_CHARGED_AFTER:
            return outcome(payment)
        result = ChargeResult("failed", failure_reason=NOT_CHARGED)
    return record_result(payment, result)


def close_attempts(subscription: Subscription) -> list[PaymentOutcome]:
    """Close the subscription's attempts still in flight at the provider; commit.

    Called when the subscription ends: a charge waiting for the customer's bank
    must never complete after that. Each attempt is recorded as the provider
    answers (a charge that completed just before keeps its success, and is
    logged for the merchant to refund); one the provider cannot be reached for
    is left to :func:`reconcile`.
    """
    closed = []
    payments = portal.session.scalars(
        _in_flight().where(Payment.subscription_id == subscription.id)
    )
    for payment in list(payments):
        assert payment.idempotency_key is not None
        try:
            result = provider_for(payment.customer.mode).cancel_charge(
                idempotency_key=payment.idempotency_key
            )
        except ProviderError:
            continue
        if result is None:
            result = ChargeResult("failed", failure_reason=NOT_CHARGED)
        closed.append(record_result(payment, result))
    return closed


def settle_pending(customer: Customer) -> list[PaymentOutcome]:
    """Settle ``customer``'s attempts still in flight (run on their next visit); commit."""
    payments = portal.session.scalars(
        _in_flight().where(Payment.customer_id == customer.id).order_by(Payment.created_at)
    )
    return [settle_payment(payment) for payment in list(payments)]


def reconcile(*, older_than: timedelta = timedelta(minutes=1)) -> int:
    """Settle every attempt in flight started more than ``older_than`` ago; commit.

    Return how many were settled (succeeded or failed). Run it from cron
    (``flask portal reconcile``): a crash or a time-out after the provider
    charged leaves an attempt pending; this finishes it with the same key.
    """
    moment = utcnow() - older_than
    payments = list(
        portal.session.scalars(
            _in_flight().where(Payment.created_at <= moment).order_by(Payment.created_at)
        )
    )
    return sum(settle_payment(payment).status in ("succeeded", "failed") for payment in payments)


def _action_timeout() -> timedelta:
    return timedelta(seconds=config_value("ACTION_TIMEOUT"))


def _in_flight() -> Select[Payment]:
    # The portal's own attempts (reactivations, paid invoices) carry the card
    # they charge; payments the merchant recorded through the data API are theirs to settle.
    return select(Payment).where(
        Payment.status.in_(IN_FLIGHT),
        Payment.payment_method_id.is_not(None),
        Payment.invoice_id.is_not(None),
        Payment.idempotency_key.is_not(None),
    )


# -- Recording the provider's answer ---------------------------------------------------


@dataclass(frozen=True)
class _Recorded:
    status: str
    method_set: bool = False
    reactivated: bool = False


def record_result(payment: Payment, result: ChargeResult) -> PaymentOutcome:
    """Record the provider's answer about ``payment`` in one transaction; commit; signal.

    Only an attempt still in flight takes an answer: whoever settles it first
    records it, and the others read what was recorded.
    """
    session = portal.session
    try:
        recorded = _record(payment, result)
        session.commit()
    except Exception:
        # D3: nothing of it stays; the provider keeps the answer for the next settle.
        session.rollback()
        current_app.logger.exception(
            "payment %s: recording the provider's answer failed; it is settled later",
            payment.public_id,
        )
        session.refresh(payment)
        return outcome(payment)
    session.refresh(payment)
    settled = outcome(payment)
    if recorded is not None:
        _announce(settled, recorded)
    return settled


def _announce(settled: PaymentOutcome, recorded: _Recorded) -> None:
    payment, subscription = settled.payment, settled.subscription
    assert payment is not None
    audit.event("payment_settled", payment=payment.public_id, status=recorded.status)
    if recorded.reactivated:
        assert subscription is not None
        audit.event(
            "subscription_reactivated",
            subscription=subscription.public_id,
            payment=payment.public_id,
        )
    about = {"customer": payment.customer, "subscription": subscription}
    if recorded.status == "succeeded":
        signals.send(signals.payment_succeeded, **about, payment=payment, invoice=settled.invoice)
    if recorded.method_set:
        signals.send(signals.payment_method_updated, **about, payment_method=payment.payment_method)
    if recorded.reactivated:
        signals.send(signals.subscription_reactivated, **about, payment=payment)
    if recorded.status == "failed":
        signals.send(
            signals.payment_failed, **about, payment=payment, reason=payment.failure_reason
        )


def _record(payment: Payment, result: ChargeResult) -> _Recorded | None:
    now = utcnow()
    values: dict[str, Any] = {"status": result.status, "updated_at": now}
    if result.status == "requires_action":
        values["action_url"] = v.required_text(
            "action_url", result.action_url, max_length=2000, identifier=True
        )
    else:
        values["action_url"] = None
    if result.status == "failed":
        values["failure_reason"] = (result.failure_reason or "The payment failed.")[:500]
    if result.reference is not None:
        values["provider_reference"] = result.reference[:255]
    # Waiting for the bank is news only to a pending attempt: told again, it changes
    # nothing (its updated_at keeps counting towards ACTION_TIMEOUT).
    still = ("pending",) if result.status == "requires_action" else IN_FLIGHT
    won = update_one(
        update(Payment).where(Payment.id == payment.id, Payment.status.in_(still)).values(**values)
    )
    if not won:
        if result.status == "succeeded":
            portal.session.refresh(payment)
            if payment.status != "succeeded":
                current_app.logger.error(
                    "payment %s is %s but the provider charged it: refund it",
                    payment.public_id,
                    payment.status,
                )
        return None
    if result.status == "requires_action":
        return _Recorded("requires_action")
    paid = result.status == "succeeded"
    if payment.subscription_id is None:
        # A one-off invoice's payment: the invoice is paid, or stays open as it was.
        if paid:
            _pay_open_invoice(payment, now)
        return _Recorded(result.status)
    update_rows(
        update(Invoice)
        .where(Invoice.id == payment.invoice_id, Invoice.status == "draft")
        .values({"status": "paid", "paid_at": now} if paid else {"status": "void"})
    )
    if not paid:
        return _Recorded("failed")
    return _record_success(payment, now)


def _pay_open_invoice(payment: Payment, now: datetime) -> None:
    paid = update_rows(
        update(Invoice)
        .where(Invoice.id == payment.invoice_id, Invoice.status == "open")
        .values(status="paid", paid_at=now)
    )
    emails.queue_payment_succeeded(payment)
    if not paid:
        # Voided (or paid otherwise) while the charge was in flight.
        current_app.logger.warning(
            "payment %s succeeded after its invoice was closed: refund it if it is not owed",
            payment.public_id,
        )


def _record_success(payment: Payment, now: datetime) -> _Recorded:
    subscription, method = payment.subscription, payment.payment_method
    assert subscription is not None and method is not None and payment.invoice is not None
    # The dues invoices the new one replaces: those open when the attempt began
    # (an invoice opened since is still owed).
    void_dues(subscription, before=payment.invoice)
    portal.session.refresh(subscription)
    emails.queue_payment_succeeded(payment)
    if subscription.status != "on_hold":
        # Cancelled while the payment was in flight (its challenge approved
        # after): the money is taken, the subscription stays as it is.
        current_app.logger.warning(
            "payment %s succeeded after subscription %s became %s: refund it if it is not owed",
            payment.public_id,
            subscription.public_id,
            subscription.status,
        )
        return _Recorded("succeeded")
    if outstanding_dues(subscription)[1]:
        # A renewal failed again meanwhile: that invoice is still owed.
        return _Recorded("succeeded", method_set=set_payment_method(subscription, method))
    ends = add_interval(now, subscription.interval, subscription.interval_count)
    transition(
        subscription,
        "active",
        current_period_start=now,
        current_period_end=ends,
        next_billing_at=ends,
        payment_method_id=method.id,
    )
    emails.queue_subscription_reactivated(subscription, renews_at=ends)
    return _Recorded("succeeded", method_set=True, reactivated=True)
