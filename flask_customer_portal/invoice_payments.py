"""Paying one open invoice with a saved card: a one-off invoice, or any open one.

The same machinery as reactivation (:mod:`.payments`): the attempt and its
payment row are committed before the provider is called, the charge carries
the attempt's idempotency key, and the answer is recorded once
(:mod:`.settlement`). An invoice has at most one payment in flight, which the
database enforces (P2, P3, P4). The invoice of an on-hold subscription is paid
by reactivating the subscription, never twice over.

Who commits: every public function here commits its own changes.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from . import validation as v
from .errors import ValidationError
from .models import IN_FLIGHT, Invoice, Payment, PaymentMethod
from .payments import add_attempt, attempt_with_key, pay_once, reactivate_subscription
from .proxies import portal, update_one
from .settlement import PaymentOutcome


def amount_due(invoice: Invoice) -> int:
    """Return what is left to pay on ``invoice``: its total less its succeeded payments."""
    paid = portal.session.scalar(
        select(func.coalesce(func.sum(Payment.amount), 0)).filter_by(
            invoice_id=invoice.id, status="succeeded"
        )
    )
    return max(invoice.total - int(paid or 0), 0)


def payable(invoice: Invoice) -> bool:
    """Whether the customer can pay ``invoice`` now: it is open and something is left to pay."""
    return invoice.status == "open" and invoice.total > 0


def reactivates(invoice: Invoice) -> bool:
    """Whether paying ``invoice`` is reactivating its on-hold subscription (its dues)."""
    subscription = invoice.subscription
    return subscription is not None and subscription.status == "on_hold"


def pay_invoice(
    invoice: Invoice,
    method: PaymentMethod,
    *,
    idempotency_key: str,
    return_url: str,
) -> PaymentOutcome:
    """Pay what is left on the open ``invoice`` with ``method``; commit.

    In order: commit a ``pending`` payment of the amount due (computed here,
    P5) linked to the invoice and the card, with ``idempotency_key``; charge
    the card with that key; record the answer
    (:func:`~.settlement.record_result`). On success the payment succeeds and
    the invoice is paid, and the "payment received" email is queued
    (:data:`~.signals.payment_succeeded`); on failure the payment fails with the
    provider's reason and the invoice stays open (:data:`~.signals.payment_failed`).
    ``"requires_action"``: send the customer to the ``action_url``. An unknown
    answer leaves the attempt ``"pending"`` for :func:`~.settlement.settle_payment`.

    The same key again, or a second attempt while one is in flight for the
    invoice, returns that attempt's outcome: never a second charge. The
    invoice of an on-hold subscription is paid by
    :func:`~.payments.reactivate_subscription` (all its dues, and the
    subscription is active again).

    :param return_url: as for :func:`~.payments.reactivate_subscription`.
    :raises ValidationError: the card or the key belong to someone else
        (``"other_customer"``, ``"idempotency_conflict"``), the invoice is not
        open (``"invoice_closed"``), or the merchant recorded a payment of it
        still in flight (``"payment_in_flight"``).
    """
    if method.customer_id != invoice.customer_id:
        raise ValidationError(
            "payment_method", "other_customer", "is not one of this customer's cards"
        )
    key = v.required_text("idempotency_key", idempotency_key, max_length=255, identifier=True)
    if reactivates(invoice) and attempt_with_key(key, _pays(invoice)) is None:
        assert invoice.subscription is not None
        return reactivate_subscription(
            invoice.subscription, method, idempotency_key=key, return_url=return_url
        )
    return pay_once(key, _pays(invoice), lambda: _start_attempt(invoice, method, key), return_url)


def _pays(invoice: Invoice) -> Callable[[Payment], bool]:
    # An attempt with the key is this invoice's payment, or the reactivation it led to.
    def mine(payment: Payment) -> bool:
        return payment.invoice_id == invoice.id or (
            payment.subscription_id is not None
            and payment.subscription_id == invoice.subscription_id
        )

    return mine


def _start_attempt(invoice: Invoice, method: PaymentMethod, key: str) -> tuple[Payment, bool]:
    # One transaction: lock the invoice while it is open (a conditional UPDATE
    # that changes nothing), then find the attempt in flight, or commit a new one.
    session = portal.session
    try:
        claimed = update_one(
            update(Invoice)
            .where(Invoice.id == invoice.id, Invoice.status == "open")
            .values(status="open")
        )
        if not claimed:
            session.rollback()
            session.refresh(invoice)
            raise ValidationError(
                "invoice",
                "invoice_closed",
                f"is {invoice.status}; it takes no payments",
                status=invoice.status,
            )
        in_flight = session.scalar(
            select(Payment).filter(Payment.invoice_id == invoice.id, Payment.status.in_(IN_FLIGHT))
        )
        if in_flight is not None:
            session.commit()
            if in_flight.idempotency_key is None or in_flight.payment_method_id is None:
                raise ValidationError(
                    "invoice", "payment_in_flight", "has a payment in flight the merchant recorded"
                )
            return in_flight, False
        payment = _new_attempt(invoice, method, key)
        session.commit()
    except IntegrityError:
        # The same key, or another attempt for the invoice, committed first.
        session.rollback()
        existing = attempt_with_key(key, _pays(invoice))
        if existing is None:
            existing = session.scalar(
                select(Payment).filter(
                    Payment.invoice_id == invoice.id, Payment.status.in_(IN_FLIGHT)
                )
            )
        if existing is None:
            raise
        return existing, False
    except BaseException:
        session.rollback()
        raise
    return payment, True


def _new_attempt(invoice: Invoice, method: PaymentMethod, key: str) -> Payment:
    amount = amount_due(invoice)
    if amount <= 0:
        raise ValidationError("invoice", "nothing_to_pay", "has nothing left to pay")
    # No subscription: settling it pays this invoice, and nothing else.
    return add_attempt(invoice.customer, invoice, method, key, amount=amount, subscription=None)
