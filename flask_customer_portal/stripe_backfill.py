"""Bringing one customer's records up to date from Stripe: ``flask portal stripe sync``.

The customer, their cards, their subscriptions, their invoices (renewals paid
and failed) and their refunds are fetched from Stripe's API and handed to the same
convergent functions the webhooks use (:mod:`.stripe_sync`, :mod:`.stripe_cards`): running it twice
changes nothing the second time, and it repairs whatever webhooks missed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import stripe_sync as sync
from .customers import upsert_customer
from .errors import ValidationError
from .models import Business, Customer
from .records import find_customer, get_customer
from .stripe_cards import sync_cards


@dataclass
class SyncReport:
    """What a sync found at Stripe and which portal records it touched."""

    customer: Customer
    cards: list[str] = field(default_factory=list)
    subscriptions: list[str] = field(default_factory=list)
    invoices: list[str] = field(default_factory=list)
    refunds: list[str] = field(default_factory=list)


def stripe_customer_id(business: Business, reference: str, client: Any, *, mode: str) -> str:
    """Return the Stripe id of a customer named by a Stripe id, a portal id or an email.

    :raises ValidationError: no such customer, or a portal customer with no Stripe id.
    """
    portal_customer = get_customer(business, reference, mode=mode)
    if portal_customer is None and "@" in reference:
        portal_customer = find_customer(business, reference, mode=mode)
        if portal_customer is None or not portal_customer.external_id:
            found = client.v1.customers.list(params={"email": reference, "limit": 1}).data
            if not found:
                raise ValidationError(
                    "customer", "not_found", f"no customer {reference!r} at Stripe"
                )
            return str(found[0].id)
    if portal_customer is not None:
        if not (portal_customer.external_id or "").startswith("cus_"):
            raise ValidationError(
                "customer", "no_stripe_id", f"customer {reference!r} has no Stripe customer id"
            )
        return str(portal_customer.external_id)
    return reference


def sync_customer(business: Business, client: Any, stripe_id: str) -> SyncReport:
    """Bring the portal's records of the Stripe customer ``stripe_id`` up to date; commit.

    A customer the portal does not know yet by its Stripe id is found by
    email, or added, in the mode of Stripe's ``livemode``, and takes the
    Stripe id as its external id (:func:`~.customers.upsert_customer`).

    :raises ValidationError: the customer the email finds has another external id.
    """
    data = client.v1.customers.retrieve(stripe_id).to_dict()
    mode = "live" if data.get("livemode") else "test"
    customer = sync.find_customer(business, mode, stripe_id) or upsert_customer(
        business, data.get("email") or "", mode=mode, name=data.get("name"), external_id=stripe_id
    )
    report = SyncReport(customer)
    subscriptions = client.v1.subscriptions.list(params={"customer": stripe_id, "status": "all"})
    for item in subscriptions.auto_paging_iter():
        if sync.apply_subscription(business, mode, item.to_dict(), client=client):
            report.subscriptions.append(item.id)
    invoices = client.v1.invoices.list(params={"customer": stripe_id})
    for item in sorted(invoices.auto_paging_iter(), key=lambda invoice: invoice.created):
        invoice = item.to_dict()
        if invoice.get("status") == "paid":
            applied = sync.apply_paid_invoice(business, mode, invoice)
        elif invoice.get("status") == "open" and invoice.get("attempted"):
            applied = sync.apply_failed_invoice(business, mode, invoice)
        else:
            applied = None
        if applied is not None:
            report.invoices.append(item.id)
    charges = client.v1.charges.list(params={"customer": stripe_id})
    for item in charges.auto_paging_iter():
        charge = item.to_dict()
        if charge.get("amount_refunded") and sync.apply_refunded_charge(business, mode, charge):
            report.refunds.append(item.id)
    # After the subscriptions: the default card is given to those without one.
    report.cards = sync_cards(customer, client, data)
    return report
