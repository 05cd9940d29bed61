"""A secure, branded, self-service billing portal for the customers of any Flask app."""

from __future__ import annotations

from importlib.metadata import version as _version

from .access import (
    SignIn,
    create_api_key,
    create_portal_session,
    revoke_api_key,
    revoke_sessions,
    start_session,
)
from .billing import issue_invoice, outstanding_dues, record_payment, record_refund, void_invoice
from .businesses import create_business, get_business, update_business, upsert_business
from .cancellation import cancel_subscription, end_due_cancellations, undo_cancellation
from .cards import (
    attach_payment_method,
    list_payment_methods,
    remove_payment_method,
    save_payment_method,
)
from .catalogue import (
    add_on_options,
    allow_switch,
    archive_price,
    archive_product,
    create_price,
    create_product,
    forbid_switch,
    switch_options,
    update_price,
    update_product,
    upsert_price,
    upsert_product,
)
from .customers import upsert_customer
from .errors import ConfigurationError, CustomerPortalError, InvalidTransition, ValidationError
from .extension import CustomerPortal
from .invoices import InvoiceRenderer, ReportlabInvoiceRenderer
from .licenses import issue_license_key
from .links import PortalLink, static_link
from .listings import list_invoices, list_subscriptions
from .mail import Email, Mailer
from .outbox import local_messages
from .payments import reactivate_subscription
from .plans import change_plan, change_quantity
from .proration import ChangePreview, ProrationLine, preview_change
from .providers import ChargeResult, PaymentProvider, ProviderError, SavedCard, TestProvider
from .records import (
    find_customer,
    get_customer,
    get_invoice,
    get_payment,
    get_price,
    get_product,
    get_subscription,
    set_external_id,
    update_metadata,
)
from .settlement import PaymentOutcome, reconcile, settle_payment
from .subscriptions import record_failed_renewal, record_renewal, start_subscription, transition
from .views import current_customer

__version__ = _version("flask-customer-portal")

__all__ = [
    "ChangePreview",
    "ChargeResult",
    "ConfigurationError",
    "CustomerPortal",
    "CustomerPortalError",
    "Email",
    "InvalidTransition",
    "InvoiceRenderer",
    "Mailer",
    "PaymentOutcome",
    "PaymentProvider",
    "PortalLink",
    "ProrationLine",
    "ProviderError",
    "ReportlabInvoiceRenderer",
    "SavedCard",
    "SignIn",
    "TestProvider",
    "ValidationError",
    "add_on_options",
    "allow_switch",
    "archive_price",
    "archive_product",
    "attach_payment_method",
    "cancel_subscription",
    "change_plan",
    "change_quantity",
    "create_api_key",
    "create_business",
    "create_portal_session",
    "create_price",
    "create_product",
    "current_customer",
    "end_due_cancellations",
    "find_customer",
    "forbid_switch",
    "get_business",
    "get_customer",
    "get_invoice",
    "get_payment",
    "get_price",
    "get_product",
    "get_subscription",
    "issue_invoice",
    "issue_license_key",
    "list_invoices",
    "list_payment_methods",
    "list_subscriptions",
    "local_messages",
    "outstanding_dues",
    "preview_change",
    "reactivate_subscription",
    "reconcile",
    "record_failed_renewal",
    "record_payment",
    "record_refund",
    "record_renewal",
    "remove_payment_method",
    "revoke_api_key",
    "revoke_sessions",
    "save_payment_method",
    "set_external_id",
    "settle_payment",
    "start_session",
    "start_subscription",
    "static_link",
    "switch_options",
    "transition",
    "undo_cancellation",
    "update_business",
    "update_metadata",
    "update_price",
    "update_product",
    "upsert_business",
    "upsert_customer",
    "upsert_price",
    "upsert_product",
    "void_invoice",
]
