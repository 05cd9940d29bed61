"""Customers: the people who sign in to the portal, one per email in a business and mode.

Look them up with :mod:`.records` (by public id, external id or email).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import phonenumbers
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from . import links
from . import validation as v
from .access import end_sessions
from .config import config_value
from .errors import ValidationError
from .models import MODES, Business, Customer
from .proxies import portal, unit_of_work


def upsert_customer(
    business: Business,
    email: str,
    *,
    mode: str | None = None,
    name: str | None = None,
    phone: str | None = None,
    locale: str | None = None,
    external_id: str | None = None,
    metadata: Mapping[str, str | None] | None = None,
) -> Customer:
    """Create the customer with this email in ``business`` and ``mode``, or update it; commit.

    The email is matched case-insensitively and without surrounding spaces, so
    feeding the same customer twice updates one row. Only the details given
    (not ``None``) are changed on an existing customer.

    With an ``external_id`` (the customer's id in your system), the customer
    is found by it first, so your own id leads:

    1. The customer of this business and mode with that external id is
       updated, and its email becomes ``email``: a customer who changed their
       address with you changes it here too (their unused sign-in links are
       revoked and their portal sessions end, as for any email change). If
       another customer has that address, nothing is written
       (``ValidationError``, ``email``, ``email_taken``).
    2. Else the customer with this email takes the external id. If it already
       has another one, nothing is written (``external_id``,
       ``external_id_conflict``): change it with :func:`~.records.set_external_id`
       if the same person really has a new id with you.
    3. Else a new customer is created with both.

    Two calls at once for the same new email or external id end with one customer.

    :param mode: ``"test"`` or ``"live"``; the ``CUSTOMER_PORTAL_DEFAULT_MODE`` when omitted.
    :param phone: any common notation with a country code; stored in E.164.
    :param metadata: merged into the customer's metadata; a value of ``None``
        removes its key (see :func:`~.records.update_metadata`).
    """
    mode = v.choice("mode", mode or config_value("DEFAULT_MODE"), MODES)
    address = v.email("email", email)
    details: dict[str, Any] = {}
    if name is not None:
        details["name"] = valid_name(name)
    if phone is not None:
        details["phone"] = valid_phone(phone)
    if locale is not None:
        details["locale"] = v.locale("locale", locale)
    if external_id is not None:
        details["external_id"] = v.external_id("external_id", external_id, required=True)
    changes = None if metadata is None else v.metadata("metadata", metadata)
    scope = {"business_id": business.id, "mode": mode}
    try:
        return _upsert(scope, address, details, changes)
    except IntegrityError:
        # Another request created the same customer a moment ago: update that one.
        return _upsert(scope, address, details, changes)


def _upsert(
    scope: dict[str, Any],
    address: str,
    details: dict[str, Any],
    metadata: dict[str, str | None] | None,
) -> Customer:
    with unit_of_work() as session:
        customer = _match(scope, address, details.get("external_id"))
        if customer is None:
            customer = Customer(**scope, email=address, name="")
            session.add(customer)
        elif customer.email != address:
            if email_taken(customer, address):
                raise ValidationError(
                    "email", "email_taken", "belongs to another customer of this business and mode"
                )
            customer.email = address
            session.flush()
            # As for an email change the customer confirms (T5, T11).
            links.revoke_links(customer)
            end_sessions(customer, reason="email_changed")
        for key, value in details.items():
            setattr(customer, key, value)
        if metadata is not None:
            customer.metadata_ = v.merged_metadata("metadata", customer.metadata_ or {}, metadata)
    return customer


def _match(scope: dict[str, Any], address: str, external: str | None) -> Customer | None:
    # The customer an upsert updates: by external id first, else by email.
    session = portal.session
    if external is not None:
        customer = session.scalar(select(Customer).filter_by(**scope, external_id=external))
        if customer is not None:
            return customer
    customer = session.scalar(select(Customer).filter_by(**scope, email=address))
    # The customer with the email may have this very external id: another request
    # gave it the email since the look-up by external id above.
    theirs = customer.external_id if customer is not None else None
    if external is not None and theirs not in (None, external):
        raise ValidationError(
            "external_id",
            "external_id_conflict",
            "differs from the external id of the customer with this email "
            f"({theirs!r}); change that with set_external_id first",
            current=theirs,
        )
    return customer


def email_taken(customer: Customer, address: str) -> bool:
    """Tell whether another customer of the same business and mode has ``address``."""
    return (
        portal.session.scalar(
            select(Customer.id).where(
                Customer.business_id == customer.business_id,
                Customer.mode == customer.mode,
                Customer.email == address,
                Customer.id != customer.id,
            )
        )
        is not None
    )


def valid_name(value: Any) -> str:
    """Return a customer's name, stripped, on one line; empty is allowed, a card number is not."""
    return v.text("name", value, max_length=200, required=False) or ""


def valid_phone(value: Any) -> str | None:
    """Return a phone number in E.164, or ``None`` for an empty one (it is removed)."""
    if isinstance(value, str) and not value.strip():
        return None
    return v.phone("phone", value)


def display_phone(phone: str | None) -> str:
    """Return an E.164 number the way people write it: ``+55 11 98765-4321``."""
    if not phone:
        return ""
    number = phonenumbers.parse(phone, None)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
