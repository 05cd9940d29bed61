"""Checks shared by the data API. Each raises :class:`ValidationError` naming its field."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import phonenumbers
from babel import Locale, UnknownLocaleError
from babel.numbers import list_currencies
from email_validator import EmailNotValidError, validate_email

from .errors import ValidationError

_CURRENCIES = frozenset(list_currencies())
_DIGITS = re.compile(r"\d")


def text(field: str, value: Any, *, max_length: int, required: bool = True) -> str | None:
    """Return ``value`` stripped; refuse non-strings, control characters and overlong text."""
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise ValidationError(field, "required", "is required")
        return None
    if not isinstance(value, str):
        raise ValidationError(field, "not_text", "must be text")
    stripped = value.strip()
    if len(stripped) > max_length:
        raise ValidationError(
            field, "too_long", f"must be at most {max_length} characters", max_length=max_length
        )
    if any(ord(c) < 32 and c not in "\n\t" for c in stripped) or "\x7f" in stripped:
        raise ValidationError(field, "control_characters", "must not contain control characters")
    return stripped


def required_text(field: str, value: Any, *, max_length: int) -> str:
    """Like :func:`text`, for a field that must be given."""
    result = text(field, value, max_length=max_length)
    assert result is not None
    return result


def email(field: str, value: Any) -> str:
    """Return the email normalised for matching: stripped and lower-cased.

    Syntax only (no DNS look-up); CR and LF are refused, so the address is safe
    in a mail header.
    """
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(field, "required", "is required")
    try:
        result = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError as error:
        raise ValidationError(
            field, "invalid_email", f"is not a valid email address ({error})"
        ) from None
    return str(result.normalized).lower()


def phone(field: str, value: Any) -> str:
    """Return a phone number in E.164 (``+5511987654321``); it must have a country code."""
    if not isinstance(value, str):
        raise ValidationError(field, "not_text", "must be text")
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        raise ValidationError(
            field,
            "no_country_code",
            "is not a phone number; include the country code, like +55 11 98765-4321",
        ) from None
    if not phonenumbers.is_valid_number(number):
        raise ValidationError(field, "invalid_phone", "is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def locale(field: str, value: Any) -> str:
    """Return a locale identifier Babel knows, such as ``pt_BR`` (``pt-BR`` is accepted)."""
    try:
        return str(Locale.parse(str(value).replace("-", "_")))
    except (ValueError, UnknownLocaleError):
        raise ValidationError(
            field, "invalid_locale", f"is not a known locale: {value!r}"
        ) from None


def amount(field: str, value: Any, *, positive: bool = False) -> int:
    """Return an amount in minor units: an ``int``, never negative (never zero if ``positive``)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(
            field, "not_minor_units", "must be an integer number of minor units (cents)"
        )
    if positive and value <= 0:
        raise ValidationError(field, "not_positive", "must be greater than zero")
    if value < 0:
        raise ValidationError(field, "negative", "must not be negative")
    return value


def count(field: str, value: Any, *, minimum: int = 1) -> int:
    """Return a whole number of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValidationError(
            field, "too_small", f"must be a whole number of at least {minimum}", minimum=minimum
        )
    return value


def currency(field: str, value: Any) -> str:
    """Return an ISO 4217 currency code in upper case."""
    if not isinstance(value, str) or value.strip().upper() not in _CURRENCIES:
        raise ValidationError(
            field, "invalid_currency", f"is not an ISO 4217 currency code: {value!r}"
        )
    return value.strip().upper()


def choice(field: str, value: Any, choices: tuple[str, ...]) -> str:
    """Return ``value`` if it is one of ``choices``."""
    if value not in choices:
        raise ValidationError(
            field,
            "invalid_choice",
            f"must be one of {', '.join(choices)}; got {value!r}",
            choices=choices,
        )
    return str(value)


def boolean(field: str, value: Any) -> bool:
    """Return ``value`` if it is ``True`` or ``False`` (not merely truthy)."""
    if not isinstance(value, bool):
        raise ValidationError(field, "not_boolean", "must be True or False")
    return value


def aware(field: str, value: Any, *, required: bool = True) -> datetime | None:
    """Return an aware datetime; naive ones are ambiguous and refused."""
    if value is None and not required:
        return None
    if not isinstance(value, datetime):
        raise ValidationError(field, "not_datetime", "must be a datetime")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(field, "naive_datetime", "must be timezone-aware (for example UTC)")
    return value


def not_a_card_number(field: str, value: str) -> str:
    """Refuse anything that looks like a payment card number (PCI: never store one)."""
    digits = "".join(_DIGITS.findall(value))
    if 12 <= len(digits) <= 19 and _luhn_valid(digits) and len(digits) >= len(value) * 0.6:
        raise ValidationError(
            field, "card_number", "looks like a card number; store the provider's token instead"
        )
    return value


def _luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        number = int(char)
        if index % 2:
            number = number * 2 - 9 if number > 4 else number * 2
        total += number
    return total % 10 == 0
