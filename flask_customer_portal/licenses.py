"""License keys sold to customers."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from . import validation as v
from .db import utcnow
from .errors import ValidationError
from .models import LICENSE_STATUSES, Customer, LicenseKey, Subscription
from .proxies import portal, unit_of_work

_KEY_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def issue_license_key(
    customer: Customer,
    *,
    product: str,
    key: str | None = None,
    expires_at: datetime | None = None,
    activation_limit: int | None = None,
    subscription: Subscription | None = None,
    status: str = "active",
) -> LicenseKey:
    """Give ``customer`` a license key for ``product`` and commit it.

    :param key: the key your licensing system issued; a random
        ``XXXXX-XXXXX-XXXXX-XXXXX-XXXXX`` key (124 bits) when omitted.
    :param activation_limit: how many machines may activate it; unlimited when omitted.
    """
    product = v.required_text("product", product, max_length=200)
    if key is None:
        key = generate_key()
    else:
        key = v.required_text("key", key, max_length=128, identifier=True)
        if len(key) < 8:
            raise ValidationError("key", "too_short", "must be at least 8 characters")
    fields = {
        "expires_at": v.aware("expires_at", expires_at, required=False),
        "activation_limit": (
            None if activation_limit is None else v.count("activation_limit", activation_limit)
        ),
        "status": v.choice("status", status, LICENSE_STATUSES),
    }
    if subscription is not None and subscription.customer_id != customer.id:
        raise ValidationError("subscription", "other_customer", "belongs to another customer")
    with unit_of_work() as session:
        if session.scalar(select(LicenseKey.id).filter_by(key=key)) is not None:
            raise ValidationError("key", "taken", "is already issued")
        license_key = LicenseKey(
            customer_id=customer.id,
            subscription_id=subscription.id if subscription else None,
            key=key,
            product=product,
            activations=0,
            **fields,
        )
        session.add(license_key)
    return license_key


def generate_key() -> str:
    """Return a random, readable key in five groups of five (no 0/O, 1/I look-alikes)."""
    chars = "".join(secrets.choice(_KEY_ALPHABET) for _ in range(25))
    return "-".join(chars[i : i + 5] for i in range(0, 25, 5))


@dataclass(frozen=True)
class KeyListing:
    """A license key as its owner sees it on the portal."""

    key: LicenseKey
    #: The key with all but its ends hidden, for the screen until revealed.
    masked: str
    #: Whether its expiry date has passed.
    expired: bool
    #: The status to show: an active key past its expiry reads ``"expired"``.
    status: str


def customer_license_keys(customer: Customer) -> list[KeyListing]:
    """Return every license key of ``customer``, newest first, in one query."""
    now = utcnow()
    keys = portal.session.scalars(
        select(LicenseKey)
        .filter_by(customer_id=customer.id)
        .order_by(LicenseKey.created_at.desc(), LicenseKey.id.desc())
    )
    listings = []
    for key in keys:
        expired = key.expires_at is not None and key.expires_at <= now
        status = "expired" if expired and key.status == "active" else key.status
        listings.append(KeyListing(key, mask_key(key.key), expired, status))
    return listings


def mask_key(key: str) -> str:
    """Hide a key but its ends: ``ABCDE-•••••-•••••-•••••-VWXYZ``; dashes stay.

    A key in three or more groups keeps its first and last group (when they are
    at most half of it); any other keeps its last four characters.
    """
    groups = key.split("-")
    if len(groups) >= 3 and len(groups[0]) + len(groups[-1]) <= len(key) // 2:
        return "-".join([groups[0], *("•" * len(group) for group in groups[1:-1]), groups[-1]])
    return "".join(c if c == "-" or i >= len(key) - 4 else "•" for i, c in enumerate(key))
