"""Customers: the people who sign in to the portal."""

from __future__ import annotations

from typing import Any

import phonenumbers
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from . import validation as v
from .businesses import locale as parse_locale
from .config import MODES, config_value
from .db import db_session, unit_of_work
from .errors import ValidationError
from .models import Business, Customer


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
    details = _details(name=name, phone=phone, locale=locale)
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
    return db_session().scalar(
        select(Customer).filter_by(business_id=business.id, mode=mode, public_id=public_id)
    )


def find_customer(business: Business, email: str, *, mode: str) -> Customer | None:
    """Return the customer of ``business`` in ``mode`` with this email, in any case."""
    try:
        address = v.email("email", email)
    except ValidationError:
        return None
    return db_session().scalar(
        select(Customer).filter_by(business_id=business.id, mode=mode, email=address)
    )


def normalize_phone(field: str, value: Any) -> str:
    """Return a phone number in E.164 (``+5511987654321``); it must have a country code."""
    try:
        number = phonenumbers.parse(str(value), None)
    except phonenumbers.NumberParseException:
        raise ValidationError(
            field, "is not a phone number; include the country code, like +55 11 98765-4321"
        ) from None
    if not phonenumbers.is_valid_number(number):
        raise ValidationError(field, "is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _details(*, name: Any, phone: Any, locale: Any) -> dict[str, Any]:
    details: dict[str, Any] = {}
    if name is not None:
        details["name"] = v.text("name", name, max_length=200, required=False) or ""
    if phone is not None:
        details["phone"] = normalize_phone("phone", phone) if str(phone).strip() else None
    if locale is not None:
        details["locale"] = parse_locale("locale", locale)
    return details
