"""Pages: the customer's saved cards: see them, choose the default, remove one, add one.

Every POST needs a recent sign-in (T12) and the form's CSRF token (C1); a
card number is never typed here (P1): a card is added on the provider's
page, as on the payment-method page.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from .. import cards
from ..errors import ValidationError
from ..history import customer_invoice
from ..i18n import N_, gettext
from ..models import CURRENT_STATUSES, Customer, PaymentMethod, Subscription
from ..providers import ProviderError
from ..proxies import portal
from ..urls import external_url
from .auth import customer_required, login_url, signed_in_customer, signed_in_recently
from .guard import FLASH, or_404
from .messages import error_message

#: What the customer reads when the provider cannot be reached.
UNREACHABLE = N_("Our payment provider could not be reached. Nothing was changed; try again soon.")


def register(blueprint: Blueprint) -> None:
    """Add these pages to ``blueprint``."""
    base = "/payment-methods"
    blueprint.add_url_rule(base, "payment_methods", customer_required(methods_page))
    blueprint.add_url_rule(
        base + "/<method_id>/default",
        "default_card",
        customer_required(make_default),
        methods=["POST"],
    )
    blueprint.add_url_rule(
        base + "/<method_id>/remove", "remove_card", customer_required(remove), methods=["POST"]
    )
    blueprint.add_url_rule(
        base + "/new-card", "new_card", customer_required(new_card), methods=["POST"]
    )
    blueprint.add_url_rule(
        base + "/card-added",
        "saved_card_added",
        customer_required(saved_card_added),
        methods=["GET", "POST"],
    )


def methods_page() -> Any:
    """The saved cards: brand, last four, expiry, the default, the subscriptions using each."""
    return _page(signed_in_customer())


def make_default(method_id: str) -> Any:
    """Make a saved card the default."""
    customer = signed_in_customer()
    method = or_404(cards.get_card(customer, method_id))
    if not signed_in_recently():
        return _page(customer, status=403)
    cards.set_default_payment_method(method)
    flash(gettext("%(card)s is now your default card.", card=card_words(method)), FLASH)
    return redirect(url_for("customer_portal.payment_methods"), 303)


def remove(method_id: str) -> Any:
    """Remove a saved card, unless a current subscription has no other or a payment uses it."""
    customer = signed_in_customer()
    method = or_404(cards.get_card(customer, method_id))
    if not signed_in_recently():
        return _page(customer, status=403)
    words = card_words(method)
    try:
        cards.remove_saved_card(method)
    except ValidationError as refused:
        return _page(customer, error=error_message(refused), status=409)
    except ProviderError:
        return _page(customer, error=gettext(UNREACHABLE), status=503)
    flash(gettext("Card %(card)s removed.", card=words), FLASH)
    return redirect(url_for("customer_portal.payment_methods"), 303)


def new_card() -> Any:
    """Send the customer to the provider's card page, which sends them back to the portal.

    From an invoice's payment page (the form's ``invoice``), they come back to it.
    """
    customer = signed_in_customer()
    if not signed_in_recently():
        return _page(customer, status=403)
    back = _invoice_id(customer, request.form.get("invoice"))
    return_url = external_url("customer_portal.saved_card_added", **back)
    try:
        card_page = cards.begin_card_setup(customer, return_url=return_url)
    except ProviderError:
        return _page(customer, error=gettext(UNREACHABLE), status=503)
    return redirect(card_page, 303)


def saved_card_added() -> Any:
    """Back from the provider's card page: GET shows the card, only the POST saves it (C1)."""
    customer = signed_in_customer()
    params = request.form if request.method == "POST" else request.args
    back = _invoice_id(customer, params.get("invoice"))
    try:
        if request.method == "GET":
            return render_template(
                "customer_portal/saved_card_added.html",
                customer=customer,
                card=cards.added_card(customer, params),
                setup_id=params.get("setup_id", ""),
                invoice_id=back.get("invoice"),
            )
        if not signed_in_recently():
            return _page(customer, status=403)
        method = cards.finish_card_setup(customer, params)
    except ValidationError:
        error = gettext("The card was not added. Try adding it again, or choose a saved card.")
        return _page(customer, error=error, status=400)
    flash(gettext("Card %(card)s added.", card=card_words(method)), FLASH)
    if back:
        target = url_for(
            "customer_portal.pay_invoice", invoice_id=back["invoice"], card=method.public_id
        )
    else:
        target = url_for("customer_portal.payment_methods")
    return redirect(target, 303)


def card_words(method: PaymentMethod) -> str:
    """How a flash message names a card: "Visa ending in 4242"."""
    return gettext("%(brand)s ending in %(last4)s", brand=method.brand.title(), last4=method.last4)


def _invoice_id(customer: Customer, public_id: str | None) -> dict[str, str]:
    # Only one of the customer's own invoices is a way back (no open redirect, Z1).
    invoice = customer_invoice(customer, public_id) if public_id else None
    return {"invoice": invoice.public_id} if invoice is not None else {}


def _page(customer: Customer, *, error: str | None = None, status: int = 200) -> Any:
    saved = cards.list_payment_methods(customer)
    current = portal.session.scalars(
        select(Subscription).where(
            Subscription.customer_id == customer.id,
            Subscription.status.in_(CURRENT_STATUSES),
            Subscription.payment_method_id.is_not(None),
        )
    )
    using: dict[int, list[Subscription]] = {}
    for subscription in current:
        assert subscription.payment_method_id is not None
        using.setdefault(subscription.payment_method_id, []).append(subscription)
    page = render_template(
        "customer_portal/payment_methods.html",
        customer=customer,
        cards=saved,
        using=using,
        recent=signed_in_recently(),
        login_link=login_url(customer.business.public_id, customer.mode),
        error=error,
    )
    return page, status
