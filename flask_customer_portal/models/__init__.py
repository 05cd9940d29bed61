"""The portal's tables (all prefixed ``portal_``), importable from here.

Money is an integer of minor units beside an ISO 4217 currency; times are aware
UTC. The rules that matter are constraints of the schema, not only of Python:
the database refuses a second customer with the same email in a business and
mode, an unknown status, a negative amount or an invoice whose total is not its
subtotal plus tax, whatever code writes the row. Every status set is defined
once, beside its table.
"""

from __future__ import annotations

from ..db import INTERVALS, MODES
from .access import (
    LINK_PURPOSES,
    OUTBOX_STATUSES,
    SIGN_IN_PURPOSES,
    ApiKey,
    LoginLink,
    OutboxMessage,
    PortalSession,
    StoredDocument,
    WebhookEvent,
)
from .billing import (
    CURRENT_STATUSES,
    DOWNGRADE_TIMINGS,
    IN_FLIGHT,
    INVOICE_STATUSES,
    PAYMENT_STATUSES,
    PRORATIONS,
    REFUND_STATUSES,
    SUBSCRIPTION_STATUSES,
    Business,
    Customer,
    Invoice,
    InvoiceLine,
    Payment,
    PaymentMethod,
    Refund,
    Subscription,
)
from .catalogue import Price, PriceSwitch, Product, SubscriptionAddOn
from .licenses import LICENSE_STATUSES, LicenseKey

__all__ = [
    "CURRENT_STATUSES",
    "DOWNGRADE_TIMINGS",
    "IN_FLIGHT",
    "INTERVALS",
    "INVOICE_STATUSES",
    "LICENSE_STATUSES",
    "LINK_PURPOSES",
    "MODES",
    "OUTBOX_STATUSES",
    "PAYMENT_STATUSES",
    "PRORATIONS",
    "REFUND_STATUSES",
    "SIGN_IN_PURPOSES",
    "SUBSCRIPTION_STATUSES",
    "ApiKey",
    "Business",
    "Customer",
    "Invoice",
    "InvoiceLine",
    "LicenseKey",
    "LoginLink",
    "OutboxMessage",
    "Payment",
    "PaymentMethod",
    "PortalSession",
    "Price",
    "PriceSwitch",
    "Product",
    "Refund",
    "StoredDocument",
    "Subscription",
    "SubscriptionAddOn",
    "WebhookEvent",
]
