"""Deep links: the portal page a sign-in link opens, and which pages a link may open.

A link made by :func:`~.access.create_portal_session` with a ``flow`` opens one
action straight after sign-in; an emailed sign-in link asked for from a
bookmarked page opens that page. Either way the page is a path kept with the
link on the server (never in the emailed URL), and only a path under the
portal's prefix is ever kept or followed: no open redirect (V1).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

from flask import current_app

from .config import config_value
from .errors import ValidationError
from .history import customer_invoice
from .models import Customer, Invoice, Subscription
from .records import subscription_of

#: The actions a deep link may open, and the page of each (``change_plan`` lands on
#: the subscriptions page, anchored at the subscription, until a plan-change page exists).
FLOWS: dict[str, tuple[str, str]] = {
    "update_payment_method": ("customer_portal.payment_method", "subscription_id"),
    "cancel": ("customer_portal.cancel_subscription", "subscription_id"),
    "change_plan": ("customer_portal.subscriptions", "subscription_id"),
    "pay_invoice": ("customer_portal.invoice", "invoice_id"),
}
#: The longest path a link keeps.
MAX_PATH = 2000


def flow_path(
    customer: Customer,
    flow: str | None,
    *,
    subscription_id: str | None = None,
    invoice_id: str | None = None,
) -> str:
    """Return the portal path of ``flow`` for ``customer``'s record.

    :raises ValidationError: ``flow`` is not one of :data:`FLOWS`; its record's id
        is missing, or names no record of ``customer`` (the same answer whether it
        is unknown or someone else's, Z1); or the other id is given.
    """
    if flow is None:
        raise ValidationError("flow", "required", "is required with subscription_id or invoice_id")
    if flow not in FLOWS:
        raise ValidationError("flow", "invalid_choice", "must be one of " + ", ".join(FLOWS))
    endpoint, needed = FLOWS[flow]
    given = {"subscription_id": subscription_id, "invoice_id": invoice_id}
    for field, value in given.items():
        if field != needed and value is not None:
            raise ValidationError(field, "not_allowed", f"is not used by the {flow} flow")
    target = given[needed]
    if target is None or target == "":
        raise ValidationError(needed, "required", f"is required by the {flow} flow")
    found: Invoice | Subscription | None = None
    if isinstance(target, str) and len(target) <= 64:
        if needed == "invoice_id":
            found = customer_invoice(customer, target)
        else:
            found = subscription_of(customer, target)
    if found is None:
        kind = "invoice" if needed == "invoice_id" else "subscription"
        raise ValidationError(needed, "not_found", f"is not the id of a {kind} of this customer")
    if flow == "change_plan":
        return _path(endpoint) + "#" + found.public_id
    return _path(endpoint, **{needed: found.public_id})


def check_next_path(path: str) -> str:
    """Return ``path`` if a link may open it after sign-in, else raise ``ValidationError``.

    Only a path of the portal's own: it starts with ``URL_PREFIX`` and ``/``, has
    no scheme, host, backslash, control character, or ``.``/``..`` segment (even
    percent-encoded, as browsers read them). A query and a fragment may follow.
    """
    refused = ValidationError("next_path", "invalid_path", "is not a path of the portal")
    if not isinstance(path, str) or not 0 < len(path) <= MAX_PATH or not path.isprintable():
        raise refused
    if "\\" in path or path.startswith("//"):
        raise refused
    try:
        parts = urlsplit(path)
    except ValueError:
        raise refused from None
    decoded = unquote(parts.path)
    prefix = config_value("URL_PREFIX") + "/"
    if parts.scheme or parts.netloc or not parts.path.startswith(prefix):
        raise refused
    if "\\" in decoded or "//" in decoded or not decoded.isprintable():
        raise refused
    if any(segment in (".", "..") for segment in decoded.split("/")):
        raise refused
    return path


def _path(endpoint: str, **values: Any) -> str:
    # Relative to the app's root, as ``request.path`` is: the views add the script root.
    adapter = current_app.url_map.bind("localhost", script_name="/")
    path: str = adapter.build(endpoint, values)
    return path
