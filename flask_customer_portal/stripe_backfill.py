"""Bringing one customer's records up to date from Stripe: ``flask portal stripe sync``.

The customer, their subscriptions, their invoices (renewals paid and failed)
and their refunds are fetched from Stripe's API and handed to the same
convergent functions the webhooks use (:mod:`.stripe_sync`): running it twice
changes nothing the second time, and it repairs whatever webhooks missed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import stripe_sync as sync
from .customers import upsert_customer
from .errors import ValidationError
from .models import Business, Customer
from .proxies import unit_of_work
from .records import find_customer, get_customer


@dataclass
class SyncReport:
    """What a sync found at Stripe and which portal records it touched."""

    customer: Customer
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

    A customer the portal does not know yet is added (by email, in the mode
    of Stripe's ``livemode``) and linked to Stripe by its external id.
    """
    data = client.v1.customers.retrieve(stripe_id).to_dict()
    mode = "live" if data.get("livemode") else "test"
    customer = sync.find_customer(business, mode, stripe_id)
    if customer is None:
        customer = upsert_customer(business, data["email"], mode=mode, name=data.get("name"))
        with unit_of_work():
            customer.external_id = stripe_id
    report = SyncReport(customer)
    subscriptions = client.v1.subscriptions.list(params={"customer": stripe_id, "status": "all"})
    for item in subscriptions.auto_paging_iter():
        if sync.apply_subscription(business, mode, item.to_dict(), product_name=_names(client)):
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
    return report


def _names(client: Any) -> Any:
    return lambda product_id: str(client.v1.products.retrieve(product_id).name)
