"""Customers: the people who sign in to the portal."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import phonenumbers
from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from . import access, mail, signals
from . import validation as v
from .businesses import locale as parse_locale
from .config import MODES, config_value
from .db import db_session, unit_of_work
from .errors import ValidationError
from .i18n import _l
from .models import Business, Customer, OutboxMessage


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


# -- The profile page ----------------------------------------------------------------

#: The only fields a customer may change on their profile (Z2).
PROFILE_FIELDS = ("name", "email", "phone")


class ProfileErrors(ValidationError):
    """Some profile fields are invalid; nothing was saved.

    :attr:`errors` maps each bad field to its message; :attr:`sign_in_again`
    tells that the email change needs a recent sign-in (T12).
    """

    def __init__(self, errors: dict[str, str], *, sign_in_again: bool = False) -> None:
        field, message = next(iter(errors.items()))
        super().__init__(field, message)
        self.errors = errors
        self.sign_in_again = sign_in_again


@dataclass(frozen=True)
class ProfileUpdate:
    """What a profile form did: the fields it changed, and the email waiting for confirmation."""

    changes: dict[str, tuple[Any, Any]]
    new_email: str | None


def update_profile(
    customer: Customer,
    *,
    name: Any = None,
    phone: Any = None,
    email: Any = None,
    recent_sign_in: bool,
) -> ProfileUpdate:
    """Apply the profile form to ``customer``; commit; send ``profile_updated``.

    Only the name, phone and email can change, and ``None`` leaves a field as it
    is. A new email does not change the address: it mails a confirmation link to
    the new address and a notice to the old one (in the same transaction), and
    needs ``recent_sign_in``. One bad field raises :class:`ProfileErrors` and
    nothing is saved, not even the good fields.
    """
    errors: dict[str, str] = {}
    wanted: dict[str, Any] = {}
    for field, value, check in (("name", name, _valid_name), ("phone", phone, _valid_phone)):
        try:
            if value is not None:
                wanted[field] = check(value)
        except ValidationError as error:
            errors[field] = error.message
    new_email: str | None = None
    sign_in_again = False
    try:
        address = None if email is None else v.email("email", email)
    except ValidationError as error:
        errors["email"] = error.message
    else:
        if address is not None and address != customer.email:
            if not recent_sign_in:
                sign_in_again = True
                errors["email"] = "can only be changed soon after you sign in"
            elif email_taken(customer, address):
                errors["email"] = "belongs to another account; use another address"
            else:
                new_email = address
    if errors:
        raise ProfileErrors(errors, sign_in_again=sign_in_again)
    changes = {
        field: (getattr(customer, field), value)
        for field, value in wanted.items()
        if getattr(customer, field) != value
    }
    with unit_of_work():
        for field, (_, value) in changes.items():
            setattr(customer, field, value)
        if new_email is not None:
            # A newer request replaces any earlier one still waiting.
            access.revoke_links(customer, purpose="email_change")
            mail.queue(new_email, "email_change", customer_id=customer.id, new_email=new_email)
            mail.queue_mail(customer, "email_change_notice", new_email=new_email)
    if changes:
        signals.profile_updated.send(_app(), customer=customer, changes=changes)
    return ProfileUpdate(changes, new_email)


def _valid_name(value: Any) -> str:
    name = v.text("name", value, max_length=200, required=False) or ""
    try:
        v.not_a_card_number("name", name)
    except ValidationError:
        raise ValidationError("name", "looks like a card number; never type one here") from None
    return name


def _valid_phone(value: Any) -> str | None:
    if not isinstance(value, str):
        raise ValidationError("phone", "must be text")
    return normalize_phone("phone", value) if value.strip() else None


def email_taken(customer: Customer, address: str) -> bool:
    """Tell whether another customer of the same business and mode has ``address``."""
    return (
        db_session().scalar(
            select(Customer.id).where(
                Customer.business_id == customer.business_id,
                Customer.mode == customer.mode,
                Customer.email == address,
                Customer.id != customer.id,
            )
        )
        is not None
    )


def display_phone(phone: str | None) -> str:
    """Return an E.164 number the way people write it: ``+55 11 98765-4321``."""
    if not phone:
        return ""
    number = phonenumbers.parse(phone, None)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


@dataclass(frozen=True)
class EmailChange:
    """A confirmed email change."""

    customer: Customer
    old_email: str
    new_email: str


def confirm_email_change(business: Business, mode: str, token: str) -> EmailChange | None:
    """Use an email-change link once and make its address the customer's; commit.

    In the same transaction every other unused link of the customer is revoked
    (T5) and every session of the customer ends (T11). Sends ``email_changed``.
    Returns ``None`` if the link is unknown, used, expired, or for another
    business or mode. Raises :class:`ValidationError` (``email``) if another
    customer has taken the address meanwhile: the email stays as it was.
    """
    taken = False
    try:
        with unit_of_work() as session:
            redeemed = access.redeem_email_change(business, mode, token)
            if redeemed is None:
                return None
            customer, new_email = redeemed
            old_email = customer.email
            # When taken, the link is still used up: it can never succeed.
            taken = email_taken(customer, new_email)
            if not taken:
                customer.email = new_email
                session.flush()
                access.revoke_links(customer)
                # This commits: the email, the links and the sessions change together.
                access.revoke_sessions(customer)
    except IntegrityError:
        # Another customer took the address between the check and the write.
        taken = True
    if taken:
        raise ValidationError("email", "belongs to another account")
    signals.email_changed.send(_app(), customer=customer, old_email=old_email, new_email=new_email)
    return EmailChange(customer, old_email, new_email)


def _app() -> Any:
    return current_app._get_current_object()  # type: ignore[attr-defined]


@mail.composer("email_change")
def _compose_email_change(message: OutboxMessage) -> mail.Composed | None:
    customer = db_session().get(Customer, message.params["customer_id"])
    new_email = message.params["new_email"]
    if customer is None or customer.email == new_email:
        return None
    # Two requests queued before either was sent: the one sent last is the one that counts.
    access.revoke_links(customer, purpose="email_change")
    link = access.new_link(customer, "email_change", new_email=new_email)
    return mail.render(
        "email_change",
        _l("Confirm your new email address for %(business)s", business=customer.business.name),
        business=customer.business,
        customer=customer,
        new_email=new_email,
        link=link,
        minutes=config_value("LOGIN_LINK_TTL") // 60,
    )


@mail.composer("email_change_notice")
def _compose_email_change_notice(message: OutboxMessage) -> mail.Composed | None:
    customer = db_session().get(Customer, message.params["customer_id"])
    if customer is None:
        return None
    return mail.render(
        "email_change_notice",
        _l("Your %(business)s email address is changing", business=customer.business.name),
        business=customer.business,
        customer=customer,
        old_email=message.recipient,
        new_email=message.params["new_email"],
    )
