"""Paying: changing a subscription's payment method, and reactivating an on-hold one.

A charge is never made twice. Before the provider is called, the payment
attempt (with its idempotency key) and the invoice it pays are committed; the
provider is asked with that key, and any later look at the attempt (the
customer coming back, a reload, ``flask portal reconcile``) asks the provider
about the same key, never for a new charge (:mod:`.settlement`). A
subscription has at most one attempt in flight, which the database enforces
(P2, P3, P4).

Who commits: every public function here commits its own changes, because a
payment attempt must be committed before the provider is called.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import current_app
from flask_babel import force_locale
from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from . import audit
from . import validation as v
from .billing import invoice_lines, new_invoice, outstanding_dues
from .cards import attach_payment_method, check_owner
from .db import utcnow
from .errors import InvalidTransition, ValidationError
from .formatting import locale_of
from .i18n import gettext
from .models import IN_FLIGHT, Customer, Invoice, Payment, PaymentMethod, Subscription
from .provider_customers import customer_ref
from .providers.base import ProviderError
from .proxies import portal, provider_for, update_one
from .settlement import PaymentOutcome, outcome, record_result, settle_payment

#: The placeholder in a ``return_url`` replaced by the payment attempt's public id.
PAYMENT_ID = "{payment_id}"


def change_payment_method(
    subscription: Subscription,
    method: PaymentMethod,
    *,
    idempotency_key: str,
    return_url: str,
) -> PaymentOutcome:
    """Make ``method`` the payment method of ``subscription``; commit.

    An active (or pending) subscription only changes its method
    (:func:`~.cards.attach_payment_method`): outcome ``"updated"``, nothing is
    charged, ``payment_method_updated`` is sent unless the card was already its. An
    on-hold one pays its dues with the method through
    :func:`reactivate_subscription`, which sets the method when the payment
    succeeds. ``idempotency_key`` comes from the form: submitting the same key
    again returns the first outcome.

    :raises ValidationError: the card is someone else's (code
        ``"other_customer"``), or the subscription has ended
        (``"subscription_ended"``).
    """
    check_owner(subscription, method)
    key = v.required_text("idempotency_key", idempotency_key, max_length=255, identifier=True)
    existing = attempt_with_key(key, lambda payment: payment.subscription_id == subscription.id)
    if existing is not None:
        return settle_payment(existing)
    if subscription.status == "on_hold":
        try:
            return reactivate_subscription(
                subscription, method, idempotency_key=key, return_url=return_url
            )
        except InvalidTransition:
            # Paid meanwhile (another tab): the subscription is active now.
            portal.session.refresh(subscription)
            if subscription.status != "active":
                raise
    return PaymentOutcome("updated", attach_payment_method(subscription, method))


def reactivate_subscription(
    subscription: Subscription,
    method: PaymentMethod,
    *,
    idempotency_key: str,
    return_url: str,
) -> PaymentOutcome:
    """Pay an on-hold subscription's dues with ``method``; on success make it active again.

    In order: commit the payment attempt (amount: the dues, computed here, P5)
    together with the draft invoice it pays, one line per open dues invoice;
    then charge the method with ``idempotency_key``; then record the answer
    (:func:`~.settlement.record_result`). On success, in one transaction: the
    payment succeeds, the new invoice is paid, the dues invoices it replaces
    are void, and the subscription becomes active for a new period from now
    with ``method``; the "payment succeeded" and "reactivated" emails are
    queued. On failure the payment fails with the provider's reason, the draft
    invoice is void and the subscription stays on hold. ``"requires_action"``:
    send the customer to the ``action_url``. If the provider cannot be reached
    the attempt stays ``"pending"`` and :func:`~.settlement.settle_payment`
    finishes it later.

    The same key again, or any second attempt while one is in flight on the
    subscription (two tabs), returns the outcome of that attempt: never a second
    charge. The merchant's own dunning may call this too.

    :param idempotency_key: unique per attempt: a retry after a failure needs a new one.
    :param return_url: where the provider sends the customer back after an
        extra step; ``{payment_id}`` in it (or URL-quoted, ``%7Bpayment_id%7D``)
        becomes the attempt's public id.
    :raises InvalidTransition: the subscription is not on hold.
    :raises ValidationError: the card or the key belong to someone else
        (``"other_customer"``, ``"idempotency_conflict"``), or nothing is owed
        (``"nothing_to_pay"``).
    """
    check_owner(subscription, method)
    key = v.required_text("idempotency_key", idempotency_key, max_length=255, identifier=True)
    return pay_once(
        key,
        lambda payment: payment.subscription_id == subscription.id,
        lambda: _start_attempt(subscription, method, key),
        return_url,
    )


def pay_once(
    key: str,
    mine: Callable[[Payment], bool],
    start: Callable[[], tuple[Payment, bool]],
    return_url: str,
) -> PaymentOutcome:
    """Charge once for ``key``: the attempt with this key, the one in flight, or a new one.

    ``mine`` tells whether an attempt found with the key pays for the same
    thing; ``start`` commits a new attempt, or returns the one in flight with
    ``False`` (another tab). Its outcome is this one's, unless it has failed
    meanwhile, which frees the way for this key. Only a fresh attempt is charged.
    """
    for _ in range(2):
        existing = attempt_with_key(key, mine)
        if existing is not None:
            return settle_payment(existing)
        payment, fresh = start()
        if fresh:
            audit.event(
                "payment_attempt",
                payment=payment.public_id,
                subscription=payment.subscription.public_id if payment.subscription else None,
                invoice=payment.invoice.public_id if payment.invoice else None,
                payment_method=payment.payment_method.public_id if payment.payment_method else None,
                amount=payment.amount,
                currency=payment.currency,
            )
            return _charge(payment, return_url)
        settled = settle_payment(payment)
        if settled.status != "failed":
            return settled
    return settled


def attempt_with_key(key: str, mine: Callable[[Payment], bool]) -> Payment | None:
    """Return the attempt with idempotency ``key``, or ``None``.

    :raises ValidationError: the key was used for a payment ``mine`` refuses
        (code ``"idempotency_conflict"``).
    """
    payment = portal.session.scalar(select(Payment).filter_by(idempotency_key=key))
    if payment is not None and not mine(payment):
        raise ValidationError(
            "idempotency_key", "idempotency_conflict", "was already used for another payment"
        )
    return payment


def _start_attempt(
    subscription: Subscription, method: PaymentMethod, key: str
) -> tuple[Payment, bool]:
    # One transaction: lock the subscription while it is on hold (a conditional
    # UPDATE: a row lock on PostgreSQL, the write lock on SQLite), then either
    # find the attempt in flight, or commit a new one with its invoice (fresh).
    session = portal.session
    try:
        claimed = update_one(
            update(Subscription)
            .where(Subscription.id == subscription.id, Subscription.status == "on_hold")
            # Changes nothing (updated_at too): it only takes the lock.
            .values(status="on_hold", updated_at=Subscription.updated_at)
        )
        if not claimed:
            session.rollback()
            session.refresh(subscription)
            raise InvalidTransition(subscription.public_id, "active", subscription.status)
        # Its own attempt, or the payment of one of its invoices (pay_invoice).
        its_invoices = select(Invoice.id).where(Invoice.subscription_id == subscription.id)
        in_flight = session.scalar(
            select(Payment).filter(
                or_(
                    Payment.subscription_id == subscription.id,
                    Payment.invoice_id.in_(its_invoices),
                ),
                Payment.status.in_(IN_FLIGHT),
                Payment.idempotency_key.is_not(None),
            )
        )
        if in_flight is not None:
            session.commit()
            return in_flight, False
        payment = _new_attempt(subscription, method, key)
        session.commit()
    except IntegrityError:
        # The same key, committed by a request that got here first.
        session.rollback()
        existing = attempt_with_key(key, lambda payment: payment.subscription_id == subscription.id)
        if existing is None:
            raise
        return existing, False
    except BaseException:
        session.rollback()
        raise
    return payment, True


def _new_attempt(subscription: Subscription, method: PaymentMethod, key: str) -> Payment:
    total, dues = outstanding_dues(subscription)
    if not dues:
        raise ValidationError("subscription", "nothing_to_pay", "has nothing to pay")
    customer = subscription.customer
    # The invoice is a document: written once, in the customer's language.
    with force_locale(locale_of(customer)):
        lines = [
            {
                "description": gettext(
                    "Invoice %(number)s: %(lines)s",
                    number=due.number,
                    lines="; ".join(line.description for line in due.lines),
                )[:500],
                "unit_amount": due.subtotal,
            }
            for due in dues
        ]
    now = utcnow()
    invoice = new_invoice(
        customer,
        invoice_lines(lines),
        currency=subscription.currency,
        tax=sum(due.tax for due in dues),
        subscription=subscription,
        # A draft until paid: the dues are counted once, on the invoices it replaces.
        status="draft",
        issued_at=now,
        due_at=now,
    )
    return add_attempt(customer, invoice, method, key, amount=total, subscription=subscription)


def add_attempt(
    customer: Customer,
    invoice: Invoice,
    method: PaymentMethod,
    key: str,
    *,
    amount: int,
    subscription: Subscription | None,
) -> Payment:
    """Add (and flush, don't commit) ``customer``'s pending payment to pay ``invoice``.

    With a ``subscription``, settling it reactivates that subscription; without
    one it pays ``invoice`` alone.
    """
    now = utcnow()
    payment = Payment(
        customer=customer,
        **customer.scope,
        invoice=invoice,
        subscription=subscription,
        payment_method=method,
        amount=amount,
        currency=invoice.currency,
        status="pending",
        idempotency_key=key,
        created_at=now,
        updated_at=now,
    )
    portal.session.add(payment)
    portal.session.flush()
    return payment


def _charge(payment: Payment, return_url: str) -> PaymentOutcome:
    subscription, method, invoice = payment.subscription, payment.payment_method, payment.invoice
    assert method is not None and invoice is not None
    assert payment.idempotency_key is not None
    customer = payment.customer
    for placeholder in (PAYMENT_ID, "%7Bpayment_id%7D"):
        return_url = return_url.replace(placeholder, payment.public_id)
    with force_locale(locale_of(customer)):
        if subscription is not None:
            description = gettext(
                "%(business)s %(name)s: invoice %(number)s",
                business=customer.business.name,
                name=subscription.name,
                number=invoice.number,
            )
        else:
            description = gettext(
                "%(business)s: invoice %(number)s",
                business=customer.business.name,
                number=invoice.number,
            )
    try:
        result = provider_for(customer.mode).charge(
            customer_ref=customer_ref(customer, ensure=True),
            token=method.provider_token,
            amount=payment.amount,
            currency=payment.currency,
            idempotency_key=payment.idempotency_key,
            description=description,
            return_url=return_url,
        )
    except ProviderError as error:
        current_app.logger.warning(
            "payment %s: the provider's answer is unknown (%s); it is settled later",
            payment.public_id,
            type(error).__name__,
        )
        return outcome(payment)
    return record_result(payment, result)
