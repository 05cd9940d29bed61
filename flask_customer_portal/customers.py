"""Customers: the people who sign in to the portal, one per email in a business and mode."""

from __future__ import annotations

from typing import Any

import phonenumbers
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from . import validation as v
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
) -> Customer:
    """Create the customer with this email in ``business`` and ``mode``, or update it; commit.

    The email is matched case-insensitively and without surrounding spaces, so
    feeding the same customer twice updates one row. Only the details given
    (not ``None``) are changed on an existing customer.

    :param mode: ``"test"`` or ``"live"``; the ``CUSTOMER_PORTAL_DEFAULT_MODE`` when omitted.
    :param phone: any common notation with a country code; stored in E.164.
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
    try:
        return _upsert(business, mode, address, details)
    except IntegrityError:
        # Another request created the same customer a moment ago: update that one.
        return _upsert(business, mode, address, details)


def _upsert(business: Business, mode: str, address: str, details: dict[str, Any]) -> Customer:
    with unit_of_work() as session:
        customer = session.scalar(
            select(Customer).filter_by(business_id=business.id, mode=mode, email=address)
        )
        if customer is None:
            customer = Customer(business_id=business.id, mode=mode, email=address, name="")
            session.add(customer)
        for key, value in details.items():
            setattr(customer, key, value)
    return customer


def get_customer(business: Business, public_id: str, *, mode: str) -> Customer | None:
    """Return the customer with this public id in ``business`` and ``mode``, or ``None``."""
    return portal.session.scalar(
        select(Customer).filter_by(business_id=business.id, mode=mode, public_id=public_id)
    )


def find_customer(business: Business, email: str, *, mode: str) -> Customer | None:
    """Return the customer of ``business`` in ``mode`` with this email, in any case."""
    try:
        address = v.email("email", email)
    except ValidationError:
        return None
    return portal.session.scalar(
        select(Customer).filter_by(business_id=business.id, mode=mode, email=address)
    )


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
