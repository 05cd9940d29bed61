"""Payment methods and payments: saving cards, reactivating on-hold subscriptions, settling.

A charge is never made twice. Before the provider is called, the payment
attempt (with its idempotency key) and the invoice it pays are committed; the
provider is asked with that key, and any later look at the attempt (the
customer coming back, a reload, ``flask portal reconcile``) asks the provider
about the same key, never for a new charge. A subscription has at most one
attempt in flight, which the database enforces (P2, P3, P4).

Who commits: every public function here commits its own changes, because a
payment attempt must be committed before the provider is called. Signals are
sent after the commit, with the app as sender.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from blinker import NamedSignal
from flask import current_app
from sqlalchemy import Select, select, update
from sqlalchemy.exc import IntegrityError

from . import formatting, mail, signals
from . import validation as v
from .billing import invoice_lines, new_invoice, outstanding_dues
from .db import db_session, utcnow
from .errors import ConfigurationError, InvalidTransition, ValidationError
from .i18n import N_, _l, gettext
from .models import Customer, Invoice, OutboxMessage, Payment, PaymentMethod, Subscription
from .providers.base import ChargeResult, PaymentProvider, ProviderError, SavedCard
from .subscriptions import add_interval, compose_renewal, subscription_name, transition

#: Payment statuses of an attempt whose outcome is not final yet.
IN_FLIGHT = ("pending", "requires_action")

#: How long an attempt the provider has no record of stays "pending" before it
#: is settled as never charged: longer than any provider call can take, so a
#: charge still on its way is never given up.
NOT_CHARGED_AFTER = timedelta(minutes=5)

#: The placeholder in a ``return_url`` replaced by the payment attempt's public id.
PAYMENT_ID = "{payment_id}"

#: What the customer reads when an attempt ended without reaching the provider.
NOT_CHARGED = "The payment could not be completed and you were not charged. Please try again."

_LAST4 = re.compile(r"\d{4}")


@dataclass(frozen=True)
class PaymentOutcome:
    """What came of changing a payment method or paying the dues.

    ``status``: ``"updated"`` (only the method changed), ``"succeeded"``,
    ``"failed"`` (``failure_reason`` says why, for the customer),
    ``"requires_action"`` (send the customer to ``action_url``) or
    ``"pending"`` (the provider's answer is unknown; it is settled later).
    """

    status: Literal["updated", "succeeded", "failed", "requires_action", "pending"]
    subscription: Subscription
    payment: Payment | None = None
    invoice: Invoice | None = None
    failure_reason: str | None = None
    action_url: str | None = None


# -- Saved cards ---------------------------------------------------------------------


def customer_cards(customer: Customer) -> list[PaymentMethod]:
    """Return ``customer``'s saved cards, the default first, then oldest first."""
    return list(
        db_session().scalars(
            select(PaymentMethod)
            .filter_by(customer_id=customer.id)
            .order_by(PaymentMethod.is_default.desc(), PaymentMethod.created_at, PaymentMethod.id)
        )
    )


def get_card(customer: Customer, public_id: str) -> PaymentMethod | None:
    """Return ``customer``'s saved card with this public id, or ``None`` (Z1)."""
    return db_session().scalar(
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
        raise ValidationError("last4", "must be the last four digits of the card")
    if v.count("exp_month", card.exp_month) > 12:
        raise ValidationError("exp_month", "must be a month from 1 to 12")
    if v.count("exp_year", card.exp_year, minimum=2000) > 2999:
        raise ValidationError("exp_year", "must be a year before 3000")
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
        db_session().rollback()
        return _insert_card(customer, fields)


def _insert_card(customer: Customer, fields: dict[str, Any]) -> PaymentMethod:
    session = db_session()
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
    """
    return provider_for(customer.mode).begin_card_setup(
        customer_ref=customer.public_id, email=customer.email, return_url=return_url
    )


def finish_card_setup(customer: Customer, params: Mapping[str, str]) -> PaymentMethod:
    """Save the card ``customer`` just added on the provider's page; commit; return it.

    :raises ValidationError: the parameters name no finished setup of this customer.
    """
    provider = provider_for(customer.mode)
    try:
        card = provider.complete_card_setup(customer_ref=customer.public_id, params=params)
    except (ValueError, ProviderError):
        raise ValidationError(
            "setup_id", N_("We could not find the card you added. Please add it again.")
        ) from None
    return save_card(customer, card)


def provider_for(mode: str) -> PaymentProvider:
    """Return the payment provider of ``mode`` ("test" or "live").

    :raises ConfigurationError: no provider is configured for that mode.
    """
    provider: PaymentProvider | None = current_app.extensions["customer_portal"].provider_for(mode)
    if provider is None:
        raise ConfigurationError(
            f"no payment provider for {mode} mode: pass provider= to CustomerPortal"
        )
    return provider


# -- Changing the method, paying the dues ----------------------------------------------


def change_payment_method(
    subscription: Subscription,
    method: PaymentMethod,
    *,
    idempotency_key: str,
    return_url: str,
) -> PaymentOutcome:
    """Make ``method`` the payment method of ``subscription``; commit.

    An active (or pending) subscription only changes its method: outcome
    ``"updated"``, nothing is charged. An on-hold one pays its dues with the
    method through :func:`reactivate_subscription`, which sets the method when
    the payment succeeds. ``idempotency_key`` comes from the form: submitting
    the same key again returns the first outcome.

    :raises ValidationError: the card is someone else's, or the subscription has ended.
    """
    _check_card(subscription, method)
    key = v.required_text("idempotency_key", idempotency_key, max_length=255)
    existing = _attempt_with_key(subscription, key)
    if existing is not None:
        return settle_payment(existing)
    if subscription.status == "on_hold":
        try:
            return reactivate_subscription(
                subscription, method, idempotency_key=key, return_url=return_url
            )
        except InvalidTransition:
            # Paid meanwhile (another tab): the subscription is active now.
            db_session().refresh(subscription)
            if subscription.status != "active":
                raise
    session = db_session()
    if subscription.status not in ("active", "pending") or not _set_method(subscription, method):
        session.rollback()
        raise ValidationError(
            "subscription", N_("This subscription has ended; its payment method cannot change.")
        )
    session.commit()
    _send(
        signals.payment_method_updated,
        customer=subscription.customer,
        subscription=subscription,
        payment_method=method,
    )
    return PaymentOutcome("updated", subscription)


def reactivate_subscription(
    subscription: Subscription,
    method: PaymentMethod,
    *,
    idempotency_key: str,
    return_url: str,
) -> PaymentOutcome:
    """Pay an on-hold subscription's dues with ``method``; on success make it active again.

    In order (ARCHITECTURE.md): commit the payment attempt (amount: the dues,
    computed here, P5) together with the draft invoice it pays, one line per
    open dues invoice; then charge the method with ``idempotency_key``; then
    record the answer. On success, in one transaction: the payment succeeds,
    the new invoice is paid, the dues invoices it replaces are void, and the
    subscription becomes active for a new period from now with ``method``; the
    "payment succeeded" and "reactivated" emails are queued. On failure the
    payment fails with the provider's reason, the draft invoice is void and the
    subscription stays on hold. ``"requires_action"``: send the customer to the
    ``action_url``. If the provider cannot be reached the attempt stays
    ``"pending"`` and :func:`settle_payment` finishes it later.

    The same key again, or any second attempt while one is in flight on the
    subscription (two tabs), returns the outcome of that attempt: never a second
    charge. The merchant's own dunning may call this too.

    :param idempotency_key: unique per attempt: a retry after a failure needs a new one.
    :param return_url: where the provider sends the customer back after an
        extra step; ``{payment_id}`` in it (or URL-quoted, ``%7Bpayment_id%7D``)
        becomes the attempt's public id.
    :raises InvalidTransition: the subscription is not on hold.
    :raises ValidationError: the card or the key belong to someone else.
    """
    _check_card(subscription, method)
    key = v.required_text("idempotency_key", idempotency_key, max_length=255)
    for _ in range(2):
        existing = _attempt_with_key(subscription, key)
        if existing is not None:
            return settle_payment(existing)
        payment, fresh = _start_attempt(subscription, method, key)
        if fresh:
            return _charge(payment, method, return_url)
        # Another attempt is in flight (another tab): its outcome is this one's,
        # unless it has failed meanwhile, which frees the subscription for this key.
        outcome = settle_payment(payment)
        if outcome.status != "failed":
            return outcome
    return outcome


def _check_card(subscription: Subscription, method: PaymentMethod) -> None:
    if method.customer_id != subscription.customer_id:
        raise ValidationError("payment_method", "is not one of this customer's cards")


def _attempt_with_key(subscription: Subscription, key: str) -> Payment | None:
    payment = db_session().scalar(select(Payment).filter_by(idempotency_key=key))
    if payment is not None and payment.subscription_id != subscription.id:
        raise ValidationError("idempotency_key", "was already used for another payment")
    return payment


def _start_attempt(
    subscription: Subscription, method: PaymentMethod, key: str
) -> tuple[Payment, bool]:
    # One transaction: lock the subscription while it is on hold (a conditional
    # UPDATE: a row lock on PostgreSQL, the write lock on SQLite), then either
    # find the attempt in flight, or commit a new one with its invoice (fresh).
    session = db_session()
    try:
        claimed = session.execute(
            update(Subscription)
            .where(Subscription.id == subscription.id, Subscription.status == "on_hold")
            # Changes nothing (updated_at too): it only takes the lock.
            .values(status="on_hold", updated_at=Subscription.updated_at)
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            session.rollback()
            session.refresh(subscription)
            raise InvalidTransition(subscription.public_id, "active", subscription.status)
        in_flight = session.scalar(
            select(Payment).filter(
                Payment.subscription_id == subscription.id, Payment.status.in_(IN_FLIGHT)
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
        existing = _attempt_with_key(subscription, key)
        if existing is None:
            raise
        return existing, False
    except BaseException:
        session.rollback()
        raise
    return payment, True


def _new_attempt(subscription: Subscription, method: PaymentMethod, key: str) -> Payment:
    session = db_session()
    total, dues = outstanding_dues(subscription)
    if not dues:
        raise ValidationError("subscription", N_("This subscription has nothing to pay."))
    lines = [
        {
            "description": (
                gettext(
                    "Invoice %(number)s: %(lines)s",
                    number=due.number,
                    lines="; ".join(line.description for line in due.lines),
                )
            )[:500],
            "unit_amount": due.subtotal,
        }
        for due in dues
    ]
    now = utcnow()
    invoice = new_invoice(
        subscription.customer,
        invoice_lines(lines),
        currency=subscription.currency,
        tax=sum(due.tax for due in dues),
        subscription=subscription,
        # A draft until paid: the dues are counted once, on the invoices it replaces.
        status="draft",
        issued_at=now,
        due_at=now,
    )
    session.add(invoice)
    session.flush()
    payment = Payment(
        customer_id=subscription.customer_id,
        invoice_id=invoice.id,
        subscription_id=subscription.id,
        payment_method_id=method.id,
        amount=total,
        currency=subscription.currency,
        status="pending",
        idempotency_key=key,
        created_at=now,
        updated_at=now,
    )
    session.add(payment)
    session.flush()
    return payment


def _charge(payment: Payment, method: PaymentMethod, return_url: str) -> PaymentOutcome:
    subscription = _subscription_of(payment)
    customer = subscription.customer
    assert payment.invoice is not None and payment.idempotency_key is not None
    for placeholder in (PAYMENT_ID, "%7Bpayment_id%7D"):
        return_url = return_url.replace(placeholder, payment.public_id)
    try:
        result = provider_for(customer.mode).charge(
            customer_ref=customer.public_id,
            token=method.provider_token,
            amount=payment.amount,
            currency=payment.currency,
            idempotency_key=payment.idempotency_key,
            description=gettext(
                "%(business)s %(name)s: invoice %(number)s",
                business=customer.business.name,
                name=subscription_name(subscription),
                number=payment.invoice.number,
            ),
            return_url=return_url,
        )
    except ProviderError as error:
        current_app.logger.warning(
            "payment %s: the provider's answer is unknown (%s); it is settled later",
            payment.public_id,
            type(error).__name__,
        )
        return _outcome(payment)
    return _apply(payment, result)


# -- Settling --------------------------------------------------------------------------


def settle_payment(payment: Payment) -> PaymentOutcome:
    """Find out how an attempt ended from the provider (same key) and record it; commit.

    A final attempt just returns its outcome. The provider is only asked to
    look the key up, never to charge. An attempt it has no record of is
    settled as failed ("not charged") once older than :data:`NOT_CHARGED_AFTER`;
    until then it stays pending.
    """
    if payment.status not in IN_FLIGHT:
        return _outcome(payment)
    customer = _subscription_of(payment).customer
    assert payment.idempotency_key is not None
    try:
        result = provider_for(customer.mode).lookup(idempotency_key=payment.idempotency_key)
    except ProviderError:
        return _outcome(payment)
    if result is None:
        if utcnow() - payment.created_at < NOT_CHARGED_AFTER:
            return _outcome(payment)
        result = ChargeResult("failed", failure_reason=NOT_CHARGED)
    return _apply(payment, result)


def settle_pending(customer: Customer) -> list[PaymentOutcome]:
    """Settle ``customer``'s attempts still in flight (run on their next visit); commit."""
    payments = db_session().scalars(
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
        db_session().scalars(
            _in_flight().where(Payment.created_at <= moment).order_by(Payment.created_at)
        )
    )
    return sum(settle_payment(payment).status in ("succeeded", "failed") for payment in payments)


def get_payment(customer: Customer, public_id: str) -> Payment | None:
    """Return ``customer``'s payment with this public id, or ``None`` (Z1)."""
    return db_session().scalar(
        select(Payment).filter_by(customer_id=customer.id, public_id=public_id)
    )


def _in_flight() -> Select[Payment]:
    # The portal's own attempts carry the card they charge; payments the
    # merchant recorded through the data API are theirs to settle.
    return select(Payment).where(
        Payment.status.in_(IN_FLIGHT),
        Payment.payment_method_id.is_not(None),
        Payment.subscription_id.is_not(None),
        Payment.idempotency_key.is_not(None),
    )


# -- Recording the provider's answer ---------------------------------------------------


@dataclass(frozen=True)
class _Applied:
    status: str
    method_set: bool = False
    reactivated: bool = False


def _apply(payment: Payment, result: ChargeResult) -> PaymentOutcome:
    # Record the answer in one transaction, only if the attempt is still in
    # flight: whoever settles it first (the request, the customer's return, the
    # reconciler) records it, and the others read what was recorded.
    session = db_session()
    try:
        applied = _record(payment, result)
        session.commit()
    except Exception:
        # D3: nothing of it stays; the provider keeps the answer for the next settle.
        session.rollback()
        current_app.logger.exception(
            "payment %s: recording the provider's answer failed; it is settled later",
            payment.public_id,
        )
        session.refresh(payment)
        return _outcome(payment)
    session.refresh(payment)
    outcome = _outcome(payment)
    if applied is None:
        return outcome
    subscription, customer = outcome.subscription, outcome.subscription.customer
    if applied.status == "succeeded":
        _send(
            signals.payment_succeeded,
            customer=customer,
            subscription=subscription,
            payment=payment,
            invoice=outcome.invoice,
        )
    if applied.method_set:
        _send(
            signals.payment_method_updated,
            customer=customer,
            subscription=subscription,
            payment_method=_method_of(payment),
        )
    if applied.reactivated:
        _send(
            signals.subscription_reactivated,
            customer=customer,
            subscription=subscription,
            payment=payment,
        )
    if applied.status == "failed":
        _send(
            signals.payment_failed,
            customer=customer,
            subscription=subscription,
            payment=payment,
            reason=payment.failure_reason,
        )
    return outcome


def _record(payment: Payment, result: ChargeResult) -> _Applied | None:
    session, now = db_session(), utcnow()
    values: dict[str, Any] = {"status": result.status, "updated_at": now}
    if result.status == "requires_action":
        values["action_url"] = v.required_text("action_url", result.action_url, max_length=2000)
    else:
        values["action_url"] = None
    if result.status == "failed":
        values["failure_reason"] = (result.failure_reason or "The payment failed.")[:500]
    if result.reference is not None:
        values["provider_reference"] = result.reference[:255]
    won = session.execute(
        update(Payment)
        .where(Payment.id == payment.id, Payment.status.in_(IN_FLIGHT))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if won.rowcount != 1:  # type: ignore[attr-defined]
        if result.status == "succeeded":
            session.refresh(payment)
            if payment.status != "succeeded":
                current_app.logger.error(
                    "payment %s is %s but the provider charged it: refund it",
                    payment.public_id,
                    payment.status,
                )
        return None
    if result.status == "requires_action":
        return _Applied("requires_action")
    paid = result.status == "succeeded"
    session.execute(
        update(Invoice)
        .where(Invoice.id == payment.invoice_id, Invoice.status == "draft")
        .values({"status": "paid", "paid_at": now} if paid else {"status": "void"})
        .execution_options(synchronize_session=False)
    )
    if result.status == "failed":
        return _Applied("failed")
    return _record_success(payment, now)


def _record_success(payment: Payment, now: datetime) -> _Applied:
    session = db_session()
    # The dues invoices the new one replaces: those open when the attempt began
    # (an invoice opened since is still owed).
    session.execute(
        update(Invoice)
        .where(
            Invoice.subscription_id == payment.subscription_id,
            Invoice.status == "open",
            Invoice.id < payment.invoice_id,
        )
        .values(status="void")
        .execution_options(synchronize_session=False)
    )
    subscription = _subscription_of(payment)
    session.refresh(subscription)
    customer = subscription.customer
    mail.queue_mail(customer, "payment_succeeded", payment_id=payment.id)
    if subscription.status != "on_hold":
        # Cancelled while the payment was in flight (its challenge approved
        # after): the money is taken, the subscription stays as it is.
        current_app.logger.warning(
            "payment %s succeeded after subscription %s became %s: refund it if it is not owed",
            payment.public_id,
            subscription.public_id,
            subscription.status,
        )
        return _Applied("succeeded")
    if outstanding_dues(subscription)[1]:
        # A renewal failed again meanwhile: that invoice is still owed.
        method_set = _set_method(subscription, _method_of(payment))
        return _Applied("succeeded", method_set=method_set)
    ends = add_interval(now, subscription.interval, subscription.interval_count)
    transition(
        subscription,
        "active",
        current_period_start=now,
        current_period_end=ends,
        next_billing_at=ends,
        payment_method_id=payment.payment_method_id,
    )
    mail.queue_mail(
        customer, "subscription_reactivated", subscription_id=subscription.id, renews_at=ends
    )
    return _Applied("succeeded", method_set=True, reactivated=True)


def _set_method(subscription: Subscription, method: PaymentMethod) -> bool:
    # A conditional UPDATE (don't commit): an ended subscription never takes a method.
    result = db_session().execute(
        update(Subscription)
        .where(
            Subscription.id == subscription.id,
            Subscription.status.in_(("active", "pending", "on_hold")),
        )
        .values(payment_method_id=method.id, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def _outcome(payment: Payment) -> PaymentOutcome:
    status: Any = payment.status
    return PaymentOutcome(
        status,
        _subscription_of(payment),
        payment=payment,
        invoice=payment.invoice,
        failure_reason=payment.failure_reason if payment.status == "failed" else None,
        action_url=payment.action_url if payment.status == "requires_action" else None,
    )


def _subscription_of(payment: Payment) -> Subscription:
    subscription = db_session().get(Subscription, payment.subscription_id)
    assert subscription is not None
    return subscription


def _method_of(payment: Payment) -> PaymentMethod:
    method = db_session().get(PaymentMethod, payment.payment_method_id)
    assert method is not None
    return method


def _send(signal: NamedSignal, **kwargs: Any) -> None:
    signal.send(current_app._get_current_object(), **kwargs)  # type: ignore[attr-defined]


# -- Emails ----------------------------------------------------------------------------


@mail.composer("payment_succeeded")
def _compose_succeeded(message: OutboxMessage) -> mail.Composed | None:
    payment = db_session().get(Payment, message.params["payment_id"])
    if payment is None or payment.customer_id != message.params["customer_id"]:
        return None
    subscription = _subscription_of(payment)
    customer = subscription.customer
    locale = formatting.locale_of(customer)
    amount = formatting.money(payment.amount, payment.currency, locale)
    return mail.render(
        "payment_succeeded",
        _l("Payment received: %(amount)s", amount=amount),
        business=customer.business,
        customer=customer,
        name=subscription_name(subscription),
        amount=amount,
        invoice=payment.invoice,
        card=_method_of(payment),
        paid_on=formatting.date(payment.updated_at, locale, "long"),
    )


@mail.composer("subscription_reactivated")
def _compose_reactivated(message: OutboxMessage) -> mail.Composed | None:
    return compose_renewal(
        message,
        "subscription_reactivated",
        lambda name: _l("Your %(name)s subscription is active again", name=name),
    )
