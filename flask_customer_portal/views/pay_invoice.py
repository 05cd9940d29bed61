"""Pages: paying one open invoice (a one-off, or any open one) with a saved card.

A sensitive action like the other payment pages: its POST needs a recent
sign-in (T12), and charges once per rendered form through
:func:`~..invoice_payments.pay_invoice` with the form's idempotency key (P3).
The invoice of an on-hold subscription is paid by reactivating it: its page
sends the customer to the subscription's payment-method page.
"""

from __future__ import annotations

import secrets
from typing import Any

from flask import Blueprint, redirect, render_template, request, url_for

from .. import cards
from ..errors import InvalidTransition, ValidationError
from ..history import customer_invoice
from ..i18n import gettext, translated
from ..invoice_payments import amount_due, pay_invoice, payable, reactivates
from ..models import IN_FLIGHT, Invoice, Payment
from ..payments import PAYMENT_ID
from ..settlement import settle_pending
from ..urls import external_url
from .auth import customer_required, login_url, signed_in_customer, signed_in_recently
from .guard import or_404
from .messages import error_message
from .payments import CHANGED, FORM_KEY, STALE, to_payment


def register(blueprint: Blueprint) -> None:
    """Add this page to ``blueprint``."""
    blueprint.add_url_rule(
        "/billing/invoices/<invoice_id>/pay",
        "pay_invoice",
        customer_required(pay_page),
        methods=["GET", "POST"],
    )


def pay_page(invoice_id: str) -> Any:
    """GET: what is due and the saved cards. POST: pay it with the card chosen."""
    customer = signed_in_customer()
    invoice = or_404(customer_invoice(customer, invoice_id))
    if reactivates(invoice) and invoice.subscription is not None:
        # Its dues are paid together, and the subscription is active again: one flow for it.
        target = "customer_portal.payment_method"
        return redirect(url_for(target, subscription_id=invoice.subscription.public_id), 303)
    if request.method == "GET":
        # The customer's visit settles what a crash or a time-out left unknown (P4).
        in_flight = next(
            (
                outcome.payment
                for outcome in settle_pending(customer)
                if outcome.payment is not None
                and outcome.payment.invoice_id == invoice.id
                and outcome.status in IN_FLIGHT
            ),
            None,
        )
        if not payable(invoice) and in_flight is None:
            return redirect(url_for("customer_portal.invoice", invoice_id=invoice.public_id), 303)
        return _page(invoice, selected=request.args.get("card"), in_flight=in_flight)
    if not signed_in_recently():
        return _page(invoice, status=403)
    method = cards.get_card(customer, request.form.get("payment_method", ""))
    if method is None:
        return _page(invoice, error=gettext("Choose a card, or add a new one."), status=400)
    key = request.form.get("idempotency_key", "")
    if not FORM_KEY.fullmatch(key):
        error = gettext(STALE)
        return _page(invoice, error=error, selected=method.public_id, status=400)
    try:
        outcome = pay_invoice(
            invoice,
            method,
            # Scoped to the invoice, so keys of different accounts never meet.
            idempotency_key=f"{invoice.public_id}-{key}",
            return_url=external_url("customer_portal.payment_return", payment_id=PAYMENT_ID),
        )
    except ValidationError as refused:
        return _page(invoice, error=error_message(refused), selected=method.public_id, status=409)
    except InvalidTransition:
        # Its subscription went on hold or was paid meanwhile: nothing was charged.
        return _page(invoice, error=gettext(CHANGED), status=409)
    if outcome.status == "failed":
        reason = translated(outcome.failure_reason) or gettext("The payment did not go through.")
        error = gettext(
            "The payment did not go through: %(reason)s Nothing was charged, and the invoice "
            "is still open. Try again with another card.",
            reason=reason,
        )
        return _page(invoice, error=error, selected=method.public_id, status=400)
    return to_payment(outcome)


def _page(
    invoice: Invoice,
    *,
    error: str | None = None,
    selected: str | None = None,
    in_flight: Payment | None = None,
    status: int = 200,
) -> Any:
    customer = invoice.customer
    saved = cards.list_payment_methods(customer)
    if selected not in {card.public_id for card in saved}:
        chosen = next((card for card in saved if card.is_default), saved[0] if saved else None)
        selected = chosen.public_id if chosen else None
    page = render_template(
        "customer_portal/pay_invoice.html",
        customer=customer,
        invoice=invoice,
        due=amount_due(invoice),
        payable=payable(invoice),
        cards=saved,
        selected=selected,
        in_flight=in_flight,
        idempotency_key=secrets.token_urlsafe(32),
        recent=signed_in_recently(),
        login_link=login_url(customer.business.public_id, customer.mode),
        error=error,
    )
    return page, status
