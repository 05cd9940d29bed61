"""The customer's own changes to their profile, and confirming a new email address."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError

from . import emails, links, signals
from . import validation as v
from .access import end_sessions
from .customers import email_taken, valid_name, valid_phone
from .errors import ValidationError
from .models import Business, Customer
from .proxies import unit_of_work

#: The only fields a customer may change on their profile (Z2).
PROFILE_FIELDS = ("name", "email", "phone")


class ProfileErrors(ValidationError):
    """Some profile fields are invalid; nothing was saved.

    :attr:`errors` maps each bad field to its :class:`ValidationError`; the
    first one is this error's own field, code and message.
    """

    def __init__(self, errors: dict[str, ValidationError]) -> None:
        first = next(iter(errors.values()))
        super().__init__(first.field, first.code, first.message, **first.params)
        self.errors = errors


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
    needs ``recent_sign_in`` (T12; code ``"recent_sign_in_required"``). One bad
    field raises :class:`ProfileErrors` and nothing is saved, not even the good
    fields.
    """
    errors: dict[str, ValidationError] = {}
    wanted: dict[str, Any] = {}
    for field, value, check in (("name", name, valid_name), ("phone", phone, valid_phone)):
        try:
            if value is not None:
                wanted[field] = check(value)
        except ValidationError as error:
            errors[field] = error
    new_email: str | None = None
    try:
        new_email = None if email is None else _new_email(customer, email, recent_sign_in)
    except ValidationError as error:
        errors["email"] = error
    if errors:
        raise ProfileErrors(errors)
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
            links.revoke_links(customer, purpose="email_change")
            emails.queue_email_change(customer, new_email)
    if changes:
        signals.send(signals.profile_updated, customer=customer, changes=changes)
    return ProfileUpdate(changes, new_email)


def _new_email(customer: Customer, value: Any, recent_sign_in: bool) -> str | None:
    address = v.email("email", value)
    if address == customer.email:
        return None
    if not recent_sign_in:
        raise ValidationError(
            "email", "recent_sign_in_required", "can only be changed soon after you sign in"
        )
    if email_taken(customer, address):
        raise ValidationError(
            "email", "email_taken", "belongs to another account; use another address"
        )
    return address


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
    Returns ``None`` if the link is forged, unknown, used, expired, or for another
    business or mode. Raises :class:`ValidationError` (``email``, code
    ``"email_taken"``) if another customer has taken the address meanwhile: the
    email stays as it was.
    """
    taken = False
    try:
        with unit_of_work() as session:
            used = links.use_link(business, mode, token, links.EMAIL_CHANGE)
            if used is None or used.new_email is None:
                return None
            customer = session.get_one(Customer, used.customer_id)
            old_email, new_email = customer.email, used.new_email
            # When taken, the link is still used up: it can never succeed.
            taken = email_taken(customer, new_email)
            if not taken:
                customer.email = new_email
                session.flush()
                links.revoke_links(customer)
                end_sessions(customer, reason="email_changed")
    except IntegrityError:
        # Another customer took the address between the check and the write.
        taken = True
    if taken:
        raise ValidationError("email", "email_taken", "belongs to another account")
    signals.send(signals.email_changed, customer=customer, old_email=old_email, new_email=new_email)
    return EmailChange(customer, old_email, new_email)
