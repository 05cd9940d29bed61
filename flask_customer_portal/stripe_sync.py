"""Bringing the portal's records in line with Stripe's objects, through the data API.

The Stripe webhooks (:mod:`.stripe_events`) and ``flask portal stripe sync``
(:mod:`.stripe_cli`) both hand Stripe's objects, as plain mappings, to the
functions here. Each one is convergent: it compares Stripe's object with the
portal's record and makes only the changes still missing, through the data
API's calls (each commits and signals), so applying the same object twice
changes nothing the second time, and a run that failed halfway is finished
by the next one. Portal records are found by their ``external_id``: the
Stripe id (``cus_...``, ``sub_...``, ``in_...``), which the data API writes
in the same transaction as the record it creates.

Stripe's subscription statuses map onto the portal's by :data:`STATUSES`.
Where an object names another one by id (a price's product, a customer's
default card), ``client`` (a ``stripe.StripeClient``, or ``None`` when the app
has no secret key) looks it up.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select

from .billing import record_payment, record_refund
from .cancellation import cancel_subscription, undo_cancellation
from .models import CURRENT_STATUSES, Business, Customer, Invoice, Payment, Refund, Subscription
from .plans import change_plan
from .proxies import portal, unit_of_work
from .records import get_customer, get_invoice, get_subscription
from .subscriptions import record_failed_renewal, record_renewal, start_subscription, transition

#: Stripe's subscription status → the portal's.
STATUSES: dict[str, str] = {
    "active": "active",
    "trialing": "active",
    "past_due": "on_hold",
    "unpaid": "on_hold",
    "paused": "on_hold",
    "incomplete": "pending",
    "incomplete_expired": "failed",
    "canceled": "cancelled",
}

#: What a failed renewal's invoice says when Stripe gives no reason.
RENEWAL_FAILED = "The renewal payment failed at Stripe."

Object = Mapping[str, Any]


# -- Finding the portal's records -----------------------------------------------------------


def stripe_id(value: Any) -> str | None:
    """Return the id of a Stripe reference: an id, an expanded object, or ``None``."""
    if isinstance(value, Mapping):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def find_customer(business: Business, mode: str, customer: Any) -> Customer | None:
    """Return the portal's customer of a Stripe customer (id, object or ``None``), or ``None``."""
    found = stripe_id(customer)
    return None if found is None else get_customer(business, mode=mode, external_id=found)


def find_subscription(business: Business, mode: str, subscription: Any) -> Subscription | None:
    """Return the portal's subscription of a Stripe subscription (id, object or ``None``)."""
    found = stripe_id(subscription)
    return None if found is None else get_subscription(business, mode=mode, external_id=found)


def _moment(value: Any) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if isinstance(value, int) else None


# -- Subscriptions ----------------------------------------------------------------------------


def _item(data: Object) -> Object:
    items = (data.get("items") or {}).get("data") or [{}]
    item: Object = items[0]
    return item


def _price(data: Object) -> Object:
    item = _item(data)
    price: Object = item.get("price") or item.get("plan") or data.get("plan") or {}
    return price


def _product_name(price: Object, client: Any) -> str | None:
    # The product's name: expanded on the price, or asked of Stripe; None when unknown.
    product = price.get("product")
    if isinstance(product, Mapping):
        return str(product.get("name") or "") or None
    if isinstance(product, str) and product and client is not None:
        return str(client.v1.products.retrieve(product).name or "") or None
    return None


def _unit_amount(price: Object) -> int | None:
    # None for a price of no fixed amount per unit (tiered, metered).
    amount = price.get("unit_amount", price.get("amount"))
    return None if amount is None else int(amount)


def subscription_terms(data: Object, client: Any = None) -> dict[str, Any]:
    """Return the portal's terms of a Stripe subscription: product, plan, price, interval...

    From its first item's price. Without ``client``, a product that is not
    expanded is named by the plan's nickname, or else its id.
    """
    price = _price(data)
    recurring = price.get("recurring") or price
    name = _product_name(price, client) or price.get("nickname") or stripe_id(price.get("product"))
    return {
        "product": str(name or "Subscription"),
        "plan": price.get("nickname") or "",
        "price": _unit_amount(price) or 0,
        "currency": str(price.get("currency") or "usd").upper(),
        "interval": recurring.get("interval") or "month",
        "interval_count": int(recurring.get("interval_count") or 1),
        "quantity": int(_item(data).get("quantity") or data.get("quantity") or 1),
    }


def period_of(data: Object) -> tuple[datetime | None, datetime | None]:
    """Return a Stripe subscription's current period (on the item in newer API versions)."""
    item = _item(data)
    start = data.get("current_period_start") or item.get("current_period_start")
    end = data.get("current_period_end") or item.get("current_period_end")
    return _moment(start), _moment(end)


def apply_subscription(
    business: Business, mode: str, data: Object, *, client: Any = None
) -> Subscription | None:
    """Create or bring up to date the portal's subscription of a Stripe subscription.

    A new one starts for its customer (found by external id; ``None`` when the
    portal does not know the customer), with its Stripe id as external id. A
    current one takes the plan, price and quantity of Stripe's first item
    (:func:`~.plans.change_plan`; the product's name only when it can be
    looked up), then Stripe's status (:data:`STATUSES`) and
    ``cancel_at_period_end``. Its period moves with the renewals, in
    :func:`apply_paid_invoice` and :func:`apply_failed_invoice`.
    """
    subscription = find_subscription(business, mode, data)
    status = STATUSES.get(str(data.get("status")), "pending")
    if subscription is None:
        customer = find_customer(business, mode, data.get("customer"))
        if customer is None:
            return None
        subscription = _start(customer, data, status, client)
        if subscription is None:
            return None
    elif subscription.status in CURRENT_STATUSES:
        _converge_terms(subscription, data, client)
    _converge_status(subscription, status, data)
    return subscription


def _start(customer: Customer, data: Object, status: str, client: Any) -> Subscription | None:
    if status not in ("active", "pending", "on_hold"):
        return None  # it ended before the portal heard of it: nothing to show
    start, _ = period_of(data)
    return start_subscription(
        customer,
        **subscription_terms(data, client),
        status="active" if status == "on_hold" else status,
        start=start,
        external_id=stripe_id(data),
    )


def _converge_terms(subscription: Subscription, data: Object, client: Any) -> None:
    price = _price(data)
    terms = subscription_terms(data, client)
    unit_amount = _unit_amount(price)
    change_plan(
        subscription,
        plan=terms["plan"],
        price=subscription.price_amount if unit_amount is None else unit_amount,
        product=_product_name(price, client),
        interval=terms["interval"],
        interval_count=terms["interval_count"],
        quantity=terms["quantity"],
    )


def _converge_status(subscription: Subscription, status: str, data: Object) -> None:
    if status == "cancelled" and subscription.status in ("active", "on_hold", "pending"):
        cancel_subscription(subscription, at_period_end=False, offered_only=False)
        return
    if status != subscription.status and status in ("active", "on_hold", "failed"):
        ends = subscription.current_period_end
        with unit_of_work():
            transition(subscription, status, next_billing_at=ends if status == "active" else None)
    if subscription.status != "active":
        return
    if data.get("cancel_at_period_end") and not subscription.cancel_at_period_end:
        cancel_subscription(subscription, at_period_end=True, offered_only=False)
    elif data.get("cancel_at_period_end") is False and subscription.cancel_at_period_end:
        undo_cancellation(subscription)


# -- Invoices ------------------------------------------------------------------------------


def _invoice_subscription(business: Business, mode: str, data: Object) -> Subscription | None:
    reference = data.get("subscription")
    if reference is None:
        details = (data.get("parent") or {}).get("subscription_details") or {}
        reference = details.get("subscription")
    return find_subscription(business, mode, reference)


def _period_end(data: Object) -> datetime | None:
    ends = [
        (line.get("period") or {}).get("end")
        for line in (data.get("lines") or {}).get("data") or []
    ]
    return _moment(max((end for end in ends if isinstance(end, int)), default=None))


def _paid_key(invoice_id: str) -> str:
    return f"stripe:{invoice_id}"


def _failed_key(invoice_id: str) -> str:
    return f"stripe:{invoice_id}:failed"


def _payment_by_key(key: str) -> Payment | None:
    return portal.session.scalar(select(Payment).filter_by(idempotency_key=key))


def _reference(data: Object) -> str | None:
    return stripe_id(data.get("charge")) or stripe_id(data.get("payment_intent"))


def apply_paid_invoice(business: Business, mode: str, data: Object) -> Invoice | None:
    """Record a Stripe invoice paid: a renewal, or the payment of a failed renewal's invoice.

    A paid invoice for a period after the subscription's current one is its
    renewal (:func:`~.subscriptions.record_renewal`, its invoice's external id
    the Stripe invoice's: the portal's "Renews on" date moves to the invoice's
    period end). One the portal has already, left open by a failed renewal,
    is paid, and the subscription, on hold, becomes active again. Any other (the first invoice
    of a subscription, an invoice of no subscription) changes nothing.
    """
    subscription = _invoice_subscription(business, mode, data)
    invoice_id = stripe_id(data)
    if subscription is None or invoice_id is None:
        return None
    known = get_invoice(business, mode=mode, external_id=invoice_id)
    if known is not None:
        return _pay_failed_renewal(subscription, known, data)
    period_end = _period_end(data)
    if period_end is None or period_end <= subscription.current_period_end:
        return None
    return record_renewal(
        subscription,
        period_end=period_end,
        lines=[{"description": _description(subscription, data), "unit_amount": _subtotal(data)}],
        tax=int(data.get("tax") or 0),
        provider_reference=_reference(data),
        idempotency_key=_paid_key(invoice_id),
        at=_moment((data.get("status_transitions") or {}).get("paid_at")),
        invoice_external_id=invoice_id,
    )


def _subtotal(data: Object) -> int:
    return max(
        int(data.get("amount_paid") or data.get("total") or 0) - int(data.get("tax") or 0), 0
    )


def _description(subscription: Subscription, data: Object) -> str:
    number = data.get("number")
    return f"{subscription.name} (Stripe invoice {number})" if number else subscription.name


def _pay_failed_renewal(subscription: Subscription, invoice: Invoice, data: Object) -> Invoice:
    invoice_id = stripe_id(data)
    assert invoice_id is not None
    if invoice.status == "open":
        record_payment(
            subscription.customer,
            amount=invoice.total,
            currency=invoice.currency,
            invoice=invoice,
            provider_reference=_reference(data),
            idempotency_key=_paid_key(invoice_id),
            at=_moment((data.get("status_transitions") or {}).get("paid_at")),
        )
    owing = portal.session.scalar(
        select(func.count())
        .select_from(Invoice)
        .filter_by(subscription_id=subscription.id, status="open")
    )
    if subscription.status == "on_hold" and not owing:
        with unit_of_work():
            transition(subscription, "active", next_billing_at=subscription.current_period_end)
    return invoice


def apply_failed_invoice(business: Business, mode: str, data: Object) -> Invoice | None:
    """Record a Stripe renewal whose payment failed: the portal's subscription goes on hold.

    :func:`~.subscriptions.record_failed_renewal`, with the invoice's id as external id:
    Stripe's next attempts at the same invoice change nothing more. A failed
    first invoice (the period the subscription already has) changes nothing:
    the subscription's own events say what became of it.
    """
    subscription = _invoice_subscription(business, mode, data)
    invoice_id = stripe_id(data)
    if subscription is None or invoice_id is None:
        return None
    seen = get_invoice(business, mode=mode, external_id=invoice_id)
    if seen is not None:
        return seen
    period_end = _period_end(data)
    if period_end is None or period_end <= subscription.current_period_end:
        return None
    return record_failed_renewal(
        subscription,
        reason=RENEWAL_FAILED,
        amount=int(data.get("amount_due") or 0) or None,
        provider_reference=_reference(data),
        idempotency_key=_failed_key(invoice_id),
        at=_moment(data.get("created")),
        invoice_external_id=invoice_id,
    )


# -- Refunds -------------------------------------------------------------------------------


def apply_refunded_charge(business: Business, mode: str, data: Object) -> Refund | None:
    """Record what Stripe refunded of a charge the portal knows (by its charge or intent id).

    The portal's refunds of the payment are brought up to the charge's
    ``amount_refunded``, keyed by it: the same charge applied twice records nothing more.
    """
    references = [ref for ref in (stripe_id(data), stripe_id(data.get("payment_intent"))) if ref]
    invoice_id = stripe_id(data.get("invoice"))
    payment = _payment_by_key(_paid_key(invoice_id)) if invoice_id else None
    if payment is None and references:
        payment = portal.session.scalar(
            select(Payment).where(
                Payment.business_id == business.id,
                Payment.mode == mode,
                Payment.provider_reference.in_(references),
                Payment.status == "succeeded",
            )
        )
    if payment is None:
        return None
    refunded = int(
        portal.session.scalar(
            select(func.coalesce(func.sum(Refund.amount), 0)).where(
                Refund.payment_id == payment.id, Refund.status != "failed"
            )
        )
        or 0
    )
    wanted = min(int(data.get("amount_refunded") or 0), payment.amount)
    if wanted <= refunded:
        return None
    return record_refund(
        payment,
        amount=wanted - refunded,
        provider_reference=stripe_id(data),
        idempotency_key=f"stripe:{stripe_id(data)}:refunded:{wanted}",
    )
