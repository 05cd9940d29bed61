"""Checks shared by the data API. Each raises :class:`ValidationError` naming its field."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import phonenumbers
from babel import Locale, UnknownLocaleError
from babel.numbers import list_currencies
from email_validator import EmailNotValidError, validate_email

from .errors import ValidationError

_CURRENCIES = frozenset(list_currencies())
#: Digits in groups split by one space or dash each: where a card number may hide.
_DIGIT_RUN = re.compile(r"\d+(?:[ -]\d+)*")
_SEPARATOR = re.compile(r"[ -]")


def text(
    field: str,
    value: Any,
    *,
    max_length: int,
    required: bool = True,
    multiline: bool = False,
    identifier: bool = False,
) -> str | None:
    """Return ``value`` stripped; refuse non-strings, control characters, overlong text and text
    holding a card number (P1).

    :param multiline: allow line breaks and tabs, as in an address. Other text is
        one line: names end up in mail headers, where a line break is not allowed.
    :param identifier: an identifier of another system (a processor's reference, an
        idempotency key, a tax number): one line, but not checked for card numbers,
        which a 16-digit reference resembles one time in ten.
    """
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
    allowed = "\n\t" if multiline else ""
    if any(_is_control(char) and char not in allowed for char in stripped):
        raise ValidationError(field, "control_characters", "must not contain control characters")
    return stripped if identifier else not_a_card_number(field, stripped)


def required_text(field: str, value: Any, *, max_length: int, identifier: bool = False) -> str:
    """Like :func:`text`, for a field that must be given."""
    result = text(field, value, max_length=max_length, identifier=identifier)
    assert result is not None
    return result


def email(field: str, value: Any) -> str:
    """Return the email normalised for matching: stripped and lower-cased.

    Syntax only (no DNS look-up); CR and LF are refused, so the address is safe
    in a mail header, and so is an address holding a card number (P1).
    """
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(field, "required", "is required")
    not_a_card_number(field, value)
    try:
        result = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError as error:
        raise ValidationError(
            field, "invalid_email", f"is not a valid email address ({error})"
        ) from None
    return str(result.normalized).lower()


def external_id(field: str, value: Any, *, required: bool = False) -> str | None:
    """Return the id a record has in the merchant's own system, stripped; ``None`` for none.

    Text of one line up to 255 characters, not checked for card numbers (a
    16-digit order number is an identifier, not a card).
    """
    return text(field, value, max_length=255, required=required, identifier=True)


#: Stripe's limits on metadata, so that a processor's metadata fits as it is.
METADATA_KEYS = 50
METADATA_KEY_LENGTH = 40
METADATA_VALUE_LENGTH = 500


def metadata(field: str, value: Any) -> dict[str, str | None]:
    """Return the merchant's key-value pairs: a flat mapping of text keys to text values.

    Keys are 1 to 40 characters without ``[`` or ``]`` or control characters,
    values at most 500 characters (line breaks allowed) and never a card
    number (P1); a value of ``None`` stands for removing the key. Neither is
    stripped. How many keys a record may hold is :func:`merged_metadata`'s check.
    """
    if not isinstance(value, Mapping):
        raise ValidationError(field, "not_a_mapping", "must be a mapping of text keys to text")
    pairs: dict[str, str | None] = {}
    for key, item in value.items():
        if (
            not isinstance(key, str)
            or not 0 < len(key) <= METADATA_KEY_LENGTH
            or any(_is_control(char) or char in "[]" for char in key)
        ):
            raise ValidationError(
                field,
                "invalid_key",
                f"keys must be text of 1 to {METADATA_KEY_LENGTH} characters, without "
                f"brackets or control characters; got {str(key)[:50]!r}",
            )
        name = f"{field}[{key!r}]"
        if item is not None:
            if not isinstance(item, str):
                raise ValidationError(name, "not_text", "must be text (or None to remove the key)")
            if len(item) > METADATA_VALUE_LENGTH:
                raise ValidationError(
                    name,
                    "too_long",
                    f"must be at most {METADATA_VALUE_LENGTH} characters",
                    max_length=METADATA_VALUE_LENGTH,
                )
            if any(_is_control(char) and char not in "\n\t" for char in item):
                raise ValidationError(
                    name, "control_characters", "must not contain control characters"
                )
            not_a_card_number(name, item)
        pairs[key] = item
    return pairs


def merged_metadata(
    field: str, current: Mapping[str, str], changes: Mapping[str, str | None]
) -> dict[str, str]:
    """Return ``current`` with checked ``changes`` applied: ``None`` removes a key (as Stripe).

    :raises ValidationError: the result would hold more than 50 keys.
    """
    merged = {**current, **changes}
    result = {key: item for key, item in merged.items() if item is not None}
    if len(result) > METADATA_KEYS:
        raise ValidationError(
            field,
            "too_many_keys",
            f"may hold at most {METADATA_KEYS} keys; this would make {len(result)}",
            max_keys=METADATA_KEYS,
        )
    return result


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
    """Refuse text holding a payment card number anywhere (P1: the portal never stores one).

    A card number is a Luhn-valid run of 13 to 19 digits, written whole or in
    groups split by one space or dash each (``4242 4242 4242 4242``,
    ``3782-822463-10005``), whatever surrounds it: an expiry, words, an ``@``.
    The message never repeats the value.
    """
    if any(_holds_card_number(run.group()) for run in _DIGIT_RUN.finditer(value)):
        raise ValidationError(
            field, "card_number", "looks like a card number; store the provider's token instead"
        )
    return value


def _holds_card_number(run: str) -> bool:
    """Tell whether some consecutive groups of a run of digits are a card number."""
    groups = _SEPARATOR.split(run)
    for start in range(len(groups)):
        digits = ""
        for group in groups[start:]:
            digits += group
            if len(digits) > 19:
                break
            if len(digits) >= 13 and _luhn_valid(digits):
                return True
    return False


def _luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        number = int(char)
        if index % 2:
            number = number * 2 - 9 if number > 4 else number * 2
        total += number
    return total % 10 == 0


def _is_control(char: str) -> bool:
    # Cc: C0 (line breaks included), DEL and C1; Zl, Zp: the Unicode line and paragraph separators.
    return unicodedata.category(char) in ("Cc", "Zl", "Zp")
