"""Businesses: the merchants whose customers use the portal."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from . import validation as v
from .config import config_value
from .errors import ValidationError
from .models import DOWNGRADE_TIMINGS, PRORATIONS, Business
from .proxies import portal, unit_of_work

_PUBLIC_ID = re.compile(r"[a-z0-9][a-z0-9_-]{1,39}")
_COLOR = re.compile(r"#[0-9a-fA-F]{6}")
_INVOICE_PREFIX = re.compile(r"[A-Za-z0-9-]{1,12}")
_LOGO_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")
MAX_LOGO_BYTES = 512 * 1024

#: What customers may do by themselves, each off (``False``) until the merchant turns it on.
SWITCHES = (
    "plan_changes",
    "quantity_changes",
    "add_ons",
    "pause",
    "cancellation_reasons",
    "retention_offer",
)
_FIELDS = (
    "name",
    "support_email",
    "address",
    "tax_id",
    "logo",
    "brand_color",
    "default_locale",
    "cancel_at_period_end",
    "cancel_now",
    *SWITCHES,
    "downgrades_at",
    "proration",
)


def create_business(
    name: str,
    *,
    public_id: str | None = None,
    invoice_prefix: str | None = None,
    **details: Any,
) -> Business:
    """Create a business and commit it.

    :param public_id: the id in the portal's URLs (``/portal/login/<public_id>``);
        random when not given. Lower-case letters, digits, ``-`` and ``_``.
    :param invoice_prefix: printed before invoice numbers (``ACME-000001``);
        derived from the name when not given.
    :param details: ``support_email``, ``address``, ``tax_id``, ``logo`` (PNG or
        JPEG bytes), ``brand_color`` (``#rrggbb``), ``default_locale``, and
        which ways of cancelling customers are offered: ``cancel_at_period_end``
        and ``cancel_now`` (both ``True`` by default; at least one must stay).
        The self-service switches, ``True`` or ``False`` (all ``False`` by
        default): ``plan_changes``, ``quantity_changes``, ``add_ons``,
        ``pause``, ``cancellation_reasons``, ``retention_offer``; and how
        changes are billed: ``downgrades_at`` (``"period_end"``, the default,
        or ``"now"``) and ``proration`` (``"none"``, the default: nothing is
        charged or credited mid-period; or ``"prorate"``).
    """
    fields = _clean({"name": name, **details})
    fields.setdefault("default_locale", config_value("DEFAULT_LOCALE"))
    _check_cancel_options(fields)
    if public_id is not None:
        if not isinstance(public_id, str) or not _PUBLIC_ID.fullmatch(public_id):
            raise ValidationError(
                "public_id", "invalid_public_id", "use 2-40 lower-case letters, digits, '-' or '_'"
            )
        fields["public_id"] = public_id
    prefix = invoice_prefix or re.sub(r"[^A-Z0-9]", "", fields["name"].upper())[:6] or "INV"
    if not isinstance(prefix, str) or not _INVOICE_PREFIX.fullmatch(prefix):
        raise ValidationError(
            "invoice_prefix", "invalid_invoice_prefix", "use 1-12 letters, digits or '-'"
        )
    with unit_of_work() as session:
        if public_id and session.scalar(select(Business.id).filter_by(public_id=public_id)):
            raise ValidationError("public_id", "taken", f"{public_id!r} is taken")
        business = Business(
            invoice_prefix=prefix, invoice_counter_live=0, invoice_counter_test=0, **fields
        )
        session.add(business)
    return business


def update_business(business: Business, **changes: Any) -> Business:
    """Change a business's details (the keyword arguments of :func:`create_business`)."""
    fields = _clean(changes, partial=True)
    current = {
        "cancel_at_period_end": business.cancel_at_period_end,
        "cancel_now": business.cancel_now,
    }
    _check_cancel_options(current | fields)
    with unit_of_work():
        for key, value in fields.items():
            setattr(business, key, value)
    return business


def upsert_business(
    public_id: str, name: str, *, invoice_prefix: str | None = None, **details: Any
) -> Business:
    """Create the business with this public id, or bring the one there is up to date; commit.

    For set-up code that runs at every start or deploy: running it again
    changes only the details given (the keyword arguments of
    :func:`create_business`). ``invoice_prefix`` is used when the business is
    created; one that exists keeps its own, so its invoices stay one series.
    Two processes running it at once end with one business.
    """
    existing = get_business(public_id)
    if existing is None:
        try:
            return create_business(
                name, public_id=public_id, invoice_prefix=invoice_prefix, **details
            )
        except (ValidationError, IntegrityError) as error:
            # Taken: another process created it meanwhile, and it is updated below.
            if isinstance(error, ValidationError) and error.code != "taken":
                raise
            existing = get_business(public_id)
            if existing is None:
                raise
    return update_business(existing, name=name, **details)


def get_business(public_id: str) -> Business | None:
    """Return the business with this public id, or ``None``."""
    return portal.session.scalar(select(Business).filter_by(public_id=public_id))


def only_business() -> str | None:
    """Return the public id of the one business, or ``None`` when there are none or several.

    A portal of one merchant can send a signed-out visitor to its sign-in page.
    """
    found = portal.session.scalars(select(Business.public_id).limit(2)).all()
    return found[0] if len(found) == 1 else None


def _check_cancel_options(fields: dict[str, Any]) -> None:
    if not (fields.get("cancel_at_period_end", True) or fields.get("cancel_now", True)):
        raise ValidationError(
            "cancel_now", "no_cancel_option", "offer at least one way of cancelling"
        )


def _clean(values: dict[str, Any], *, partial: bool = False) -> dict[str, Any]:
    unknown = set(values) - set(_FIELDS)
    if unknown:
        raise ValidationError(sorted(unknown)[0], "unknown_field", "is not a business field")
    fields: dict[str, Any] = {}
    if "name" in values or not partial:
        fields["name"] = v.required_text("name", values.get("name"), max_length=200)
    if values.get("support_email") is not None:
        fields["support_email"] = v.email("support_email", values["support_email"])
    if "address" in values:
        fields["address"] = v.text(
            "address", values["address"], max_length=1000, required=False, multiline=True
        )
    if "tax_id" in values:
        fields["tax_id"] = v.text(
            "tax_id", values["tax_id"], max_length=64, identifier=True, required=False
        )
    color = values.get("brand_color")
    if color is not None:
        if not isinstance(color, str) or not _COLOR.fullmatch(color):
            raise ValidationError("brand_color", "invalid_color", "must be a colour like #1a73e8")
        fields["brand_color"] = color.lower()
    if values.get("logo") is not None:
        fields["logo"] = _logo(values["logo"])
    for key in ("cancel_at_period_end", "cancel_now", *SWITCHES):
        if key in values:
            fields[key] = v.boolean(key, values[key])
    if "downgrades_at" in values:
        fields["downgrades_at"] = v.choice(
            "downgrades_at", values["downgrades_at"], DOWNGRADE_TIMINGS
        )
    if "proration" in values:
        fields["proration"] = v.choice("proration", values["proration"], PRORATIONS)
    if values.get("default_locale") is not None:
        fields["default_locale"] = v.locale("default_locale", values["default_locale"])
    return fields


def _logo(value: Any) -> bytes:
    if not isinstance(value, bytes) or not value.startswith(_LOGO_MAGIC):
        raise ValidationError("logo", "invalid_logo", "must be the bytes of a PNG or JPEG image")
    if len(value) > MAX_LOGO_BYTES:
        raise ValidationError(
            "logo", "logo_too_large", f"must be at most {MAX_LOGO_BYTES // 1024} KiB"
        )
    return value
